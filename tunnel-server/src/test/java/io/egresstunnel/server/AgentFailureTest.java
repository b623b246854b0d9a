package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.routing.EgressMode;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * What clients see when an agent goes away or a dial cannot complete: open streams close at once,
 * pending dials fail at once with 503, and limits and timeouts answer with their own statuses.
 */
class AgentFailureTest {

  /**
   * A listener whose accept queue is full and never drained: new connections to it hang in SYN
   * retransmission, so dials to it stay pending, with real sockets and no test hooks.
   */
  static final class Blackhole implements AutoCloseable {
    private final ServerSocket server;
    private final List<Socket> fillers = new ArrayList<>();

    Blackhole(String address) throws IOException {
      server = new ServerSocket();
      server.bind(new InetSocketAddress(InetAddress.getByName(address), 0), 1);
      for (int i = 0; i < 4; i++) {
        Socket s = new Socket();
        try {
          s.connect(server.getLocalSocketAddress(), 200);
          fillers.add(s);
        } catch (IOException e) {
          s.close(); // the queue is full: exactly what we want
        }
      }
    }

    String target() {
      return server.getInetAddress().getHostAddress() + ":" + server.getLocalPort();
    }

    @Override
    public void close() throws IOException {
      for (Socket s : fillers) {
        s.close();
      }
      server.close();
    }
  }

  @Test
  void killedAgentClosesItsStreamsAndFailsItsPendingDialsWith503() throws Exception {
    try (TunnelFixture fx = new TunnelFixture(EgressMode.POD);
        TestTarget echo = new TestTarget("127.2.1.10", 0, TestTarget::echo);
        Blackhole hole = new Blackhole("127.2.1.20")) {
      TunnelAgent agent =
          fx.startAgent(fx.agentConfig("node-k", "127.0.2.1", "127.2.1.0/24", EgressMode.POD));

      // A stream in the middle of a transfer.
      ConnectClient.Answer open =
          ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
      assertThat(open.status()).isEqualTo(200);
      Socket client = open.socket();
      AtomicLong echoed = new AtomicLong();
      CompletableFuture<Void> writer =
          CompletableFuture.runAsync(
              () -> {
                try {
                  Transfers.writeRandom(client.getOutputStream(), 1L << 40, 1);
                } catch (IOException expected) {
                  // the tunnel went away under the writer
                }
              });
      CompletableFuture<Long> reader =
          CompletableFuture.supplyAsync(
              () -> {
                byte[] buf = new byte[64 * 1024];
                try {
                  InputStream in = client.getInputStream();
                  for (int n; (n = in.read(buf)) > 0; ) {
                    echoed.addAndGet(n);
                  }
                } catch (IOException expected) {
                  // a reset is as good as an EOF here
                }
                return echoed.get();
              });
      await().atMost(Duration.ofSeconds(20)).until(() -> echoed.get() > (8 << 20));

      // A dial that cannot finish: the target's accept queue is full.
      CompletableFuture<ConnectClient.Answer> pending =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  return ConnectClient.connect(fx.proxy(), hole.target());
                } catch (IOException e) {
                  throw new IllegalStateException(e);
                }
              });
      await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> fx.session("node-k") != null && pendingDials(fx, "node-k") == 1);

      agent.close();

      // The open stream's client sees its connection end, and the pending dial gets 503, both
      // long before any dial timeout (10 s) could have fired.
      assertThat(reader.get(5, TimeUnit.SECONDS)).isGreaterThan(8L << 20);
      ConnectClient.Answer failed = pending.get(5, TimeUnit.SECONDS);
      assertThat(failed.status()).isEqualTo(503);
      assertThat(failed.body()).containsAnyOf("session", "shutting down");
      client.close();
      writer.get(10, TimeUnit.SECONDS);

      // With no agent, the node's targets are refused, not dialled around the tunnel.
      ConnectClient.Answer noAgent =
          ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
      assertThat(noAgent.status()).isEqualTo(503);
      assertThat(noAgent.body()).contains("no agent connected for node node-k");
      assertThat(echo.accepted.get()).isEqualTo(1);
    }
  }

  @Test
  void dialTimeoutGets504() throws Exception {
    try (TunnelFixture fx =
            new TunnelFixture(EgressMode.POD, l -> l.withDialTimeout(Duration.ofMillis(700)));
        Blackhole hole = new Blackhole("127.2.2.20")) {
      fx.startAgent(fx.agentConfig("node-t", "127.0.2.2", "127.2.2.0/24", EgressMode.POD));
      ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), hole.target());
      assertThat(a.status()).isEqualTo(504);
      assertThat(a.body()).contains("timed out");
      // The session survived the failed dial.
      assertThat(fx.session("node-t")).isNotNull();
    }
  }

  @Test
  void pendingDialLimitGets503AndLeavesTheSessionServing() throws Exception {
    try (TunnelFixture fx =
            new TunnelFixture(EgressMode.POD, l -> l.withMaxPendingDialsPerAgent(1));
        Blackhole hole = new Blackhole("127.2.3.20");
        TestTarget echo = new TestTarget("127.2.3.10", 0, TestTarget::echo)) {
      fx.startAgent(fx.agentConfig("node-p", "127.0.2.3", "127.2.3.0/24", EgressMode.POD));
      CompletableFuture<ConnectClient.Answer> first =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  return ConnectClient.connect(fx.proxy(), hole.target());
                } catch (IOException e) {
                  throw new IllegalStateException(e);
                }
              });
      await().atMost(Duration.ofSeconds(10)).until(() -> pendingDials(fx, "node-p") == 1);
      ConnectClient.Answer second = ConnectClient.connect(fx.proxy(), hole.target());
      assertThat(second.status()).isEqualTo(503);
      assertThat(second.body()).contains("pending dial limit reached");
      first.cancel(true);
      // The first dial's timeout frees the slot; the session then serves again.
      await().atMost(Duration.ofSeconds(30)).until(() -> pendingDials(fx, "node-p") == 0);
      ConnectClient.Answer third =
          ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
      assertThat(third.status()).isEqualTo(200);
      third.socket().close();
    }
  }

  static int pendingDials(TunnelFixture fx, String node) throws Exception {
    var s = fx.session(node);
    return s.eventLoop().submit(s::pendingDials).get(5, TimeUnit.SECONDS);
  }
}
