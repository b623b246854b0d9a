package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.routing.EgressMode;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * A transfer cut short must look cut short on both ends: when a stream ends abnormally (its agent
 * is gone, the server stops, a drain runs out of time), the client's socket and the target's socket
 * are closed with a reset, so each reads ECONNRESET instead of a clean end. A cut {@code kubectl
 * cp} must never look like a complete one.
 */
class TruncationTest {
  private static final String NODE_IP = "127.0.6.1";
  private static final String POD_CIDR = "127.6.1.0/24";

  /** Reads until the end; the outcome is the exception that ended it, or null for a clean EOF. */
  private static CompletableFuture<IOException> readToEnd(InputStream in, AtomicLong counted) {
    return CompletableFuture.supplyAsync(
        () -> {
          byte[] buf = new byte[64 * 1024];
          try {
            for (int n; (n = in.read(buf)) > 0; ) {
              counted.addAndGet(n);
            }
            return null;
          } catch (IOException e) {
            return e;
          }
        });
  }

  /** Uploads through {@code client} in the background until the tunnel breaks. */
  private static void uploadUntilBroken(Socket client) {
    CompletableFuture.runAsync(
        () -> {
          try {
            Transfers.writeRandom(client.getOutputStream(), 1L << 40, 9);
          } catch (IOException expected) {
            // the tunnel went away under the writer
          }
        });
  }

  /** A target that reads until the end, counting into {@code got}, and reports how it ended. */
  private static TestTarget readingTarget(
      String address, AtomicLong got, CompletableFuture<IOException> end) throws IOException {
    return new TestTarget(address, 0, s -> end.complete(readToEnd(s.getInputStream(), got).join()));
  }

  /** Streams bytes until the connection breaks. */
  private static void download(Socket s) throws IOException {
    Transfers.writeRandom(s.getOutputStream(), 1L << 40, 5);
  }

  @Test
  void aKilledAgentResetsTheClientsDownload() throws Exception {
    killAgentMidDownload(false);
  }

  /** The client has sent its whole request (FIN) and only reads: the old code ended it cleanly. */
  @Test
  void aKilledAgentResetsTheDownloadOfAClientThatHalfClosed() throws Exception {
    killAgentMidDownload(true);
  }

  private void killAgentMidDownload(boolean clientHalfClosed) throws Exception {
    try (TunnelFixture fx = new TunnelFixture(EgressMode.POD);
        TestTarget target = new TestTarget("127.6.1.10", 0, TruncationTest::download)) {
      TunnelAgent agent =
          fx.startAgent(fx.agentConfig("node-t", NODE_IP, POD_CIDR, EgressMode.POD));
      ConnectClient.Answer open =
          ConnectClient.connect(fx.proxy(), target.address() + ":" + target.port());
      assertThat(open.status()).isEqualTo(200);
      try (Socket client = open.socket()) {
        if (clientHalfClosed) {
          client.getOutputStream().write("GET /containerLogs\n".getBytes());
          client.shutdownOutput();
        }
        AtomicLong got = new AtomicLong();
        CompletableFuture<IOException> end = readToEnd(client.getInputStream(), got);
        await().atMost(Duration.ofSeconds(20)).until(() -> got.get() > (4 << 20));

        agent.close();

        IOException error = end.get(10, TimeUnit.SECONDS);
        assertThat(error)
            .as("after %d bytes, a download cut by a lost agent must end in an error", got.get())
            .isInstanceOf(SocketException.class)
            .hasMessageContaining("reset");
      }
    }
  }

  /**
   * When the server stops, or a drain runs out of its grace period, both ends of a stream read a
   * reset: the client of a download and the target of an upload. (Each end is checked on a stream
   * where it only reads: a socket that is also writing may see the reset on its write, after which
   * Linux reports a plain end to its reads.)
   */
  @Test
  void aStoppedServerResetsBothTheClientAndTheTarget() throws Exception {
    CompletableFuture<IOException> targetEnd = new CompletableFuture<>();
    AtomicLong targetGot = new AtomicLong();
    try (TunnelFixture fx = new TunnelFixture(EgressMode.POD);
        TestTarget uploadTarget = readingTarget("127.6.1.11", targetGot, targetEnd);
        TestTarget downloadTarget = new TestTarget("127.6.1.11", 0, TruncationTest::download)) {
      fx.startAgent(fx.agentConfig("node-t", NODE_IP, POD_CIDR, EgressMode.POD));
      ConnectClient.Answer up =
          ConnectClient.connect(fx.proxy(), uploadTarget.address() + ":" + uploadTarget.port());
      ConnectClient.Answer down =
          ConnectClient.connect(fx.proxy(), downloadTarget.address() + ":" + downloadTarget.port());
      assertThat(up.status()).isEqualTo(200);
      assertThat(down.status()).isEqualTo(200);
      try (Socket uploader = up.socket();
          Socket downloader = down.socket()) {
        uploadUntilBroken(uploader);
        AtomicLong clientGot = new AtomicLong();
        CompletableFuture<IOException> clientEnd =
            readToEnd(downloader.getInputStream(), clientGot);
        await()
            .atMost(Duration.ofSeconds(20))
            .until(() -> targetGot.get() > (4 << 20) && clientGot.get() > (4 << 20));

        fx.server.drain(Duration.ofMillis(300)); // neither stream can finish within it
        fx.server.close();

        assertThat(targetEnd.get(10, TimeUnit.SECONDS))
            .as("after %d bytes, the target of a cut upload must read an error", targetGot.get())
            .isInstanceOf(SocketException.class)
            .hasMessageContaining("reset");
        assertThat(clientEnd.get(10, TimeUnit.SECONDS))
            .as("after %d bytes, the client of a cut download must read an error", clientGot.get())
            .isInstanceOf(SocketException.class)
            .hasMessageContaining("reset");
      }
    }
  }

  /** The agent's own stop (SIGTERM past its grace period, say) resets its targets too. */
  @Test
  void aStoppedAgentResetsItsTargets() throws Exception {
    CompletableFuture<IOException> targetEnd = new CompletableFuture<>();
    AtomicLong targetGot = new AtomicLong();
    try (TunnelFixture fx = new TunnelFixture(EgressMode.POD);
        TestTarget target = readingTarget("127.6.1.12", targetGot, targetEnd)) {
      TunnelAgent agent =
          fx.startAgent(fx.agentConfig("node-t", NODE_IP, POD_CIDR, EgressMode.POD));
      ConnectClient.Answer open =
          ConnectClient.connect(fx.proxy(), target.address() + ":" + target.port());
      assertThat(open.status()).isEqualTo(200);
      try (Socket client = open.socket()) {
        uploadUntilBroken(client);
        await().atMost(Duration.ofSeconds(20)).until(() -> targetGot.get() > (4 << 20));

        agent.close();

        assertThat(targetEnd.get(10, TimeUnit.SECONDS))
            .as("after %d bytes, the target of a cut upload must read an error", targetGot.get())
            .isInstanceOf(SocketException.class)
            .hasMessageContaining("reset");
      }
    }
  }
}
