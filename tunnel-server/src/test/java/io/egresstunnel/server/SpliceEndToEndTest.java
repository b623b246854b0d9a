package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.net.SplicePipe;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.routing.EgressMode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * DATA payloads spliced from the websocket into the stream's socket (epoll, plaintext websocket,
 * plaintext TCP socket): every byte arrives, in order, on both sides, with several streams at once,
 * when a reader stalls (its pipe fills and the rest of its frames are read instead), when a stream
 * ends in the middle of a spliced frame, and across quiet periods; and the splice counters show
 * that the bytes did take that path, so a regression to copying cannot hide behind correct bytes.
 */
class SpliceEndToEndTest {
  private static final String POD_CIDR = "127.1.44.0/24";
  private static final String TARGET_IP = "127.1.44.1";
  private static final Duration PING_INTERVAL = Duration.ofMillis(150);
  private static final Duration PING_TIMEOUT = Duration.ofMillis(500);

  private TunnelFixture fx;
  private TunnelAgent agent;
  private final List<TestTarget> targets = new ArrayList<>();

  private int pipesBefore;

  @BeforeEach
  void start() throws Exception {
    assumeTrue(Transport.isNative(), "splicing needs epoll; this run uses " + Transport.name());
    pipesBefore = SplicePipe.openCount();
    // Short keepalive, so that the quiet periods below outlast several ping timeouts.
    fx = new TunnelFixture(EgressMode.POD, l -> l.withPing(PING_INTERVAL, PING_TIMEOUT));
    var config = fx.agentConfig("node-sp", "127.0.44.1", POD_CIDR, EgressMode.POD);
    agent = fx.startAgent(config.withLimits(config.limits().withPing(PING_INTERVAL, PING_TIMEOUT)));
  }

  @AfterEach
  void stop() throws IOException {
    for (TestTarget t : targets) {
      t.close();
    }
    if (fx != null) {
      fx.close();
    }
    // Every pipe a stream or a session opened is closed again once they are gone.
    await()
        .atMost(Duration.ofSeconds(20))
        .untilAsserted(() -> assertThat(SplicePipe.openCount()).isEqualTo(pipesBefore));
  }

  /**
   * With no pipe to spare (the process's budget is spent), streams copy as without splicing: every
   * byte arrives, nothing is spliced, and splicing resumes once pipes can be had.
   */
  @Test
  void withThePipeBudgetSpentStreamsCopyAndLoseNothing() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(60),
        () -> {
          TestTarget echo = target(TestTarget::echo);
          int max = SplicePipe.maxOpen();
          SplicePipe.maxOpen(SplicePipe.openCount());
          try (Socket s = connect(echo)) {
            Transfers.Result r = Transfers.echo(s, 8L << 20, 21);
            assertThat(r.receivedSha()).isEqualTo(r.sentSha());
          } finally {
            SplicePipe.maxOpen(max);
          }
          for (String direction : List.of("to_target", "to_client")) {
            assertThat(agentSpliced(direction)).as("agent " + direction).isZero();
            assertThat(serverSpliced(direction)).as("server " + direction).isZero();
          }
          try (Socket s = connect(echo)) {
            Transfers.Result r = Transfers.echo(s, 8L << 20, 22);
            assertThat(r.receivedSha()).isEqualTo(r.sentSha());
          }
          assertThat(serverSpliced("to_target")).as("splicing resumed").isPositive();
        });
  }

  private TestTarget target(TestTarget.Behaviour behaviour) throws IOException {
    TestTarget t = new TestTarget(TARGET_IP, 0, behaviour);
    targets.add(t);
    return t;
  }

  private Socket connect(TestTarget t) throws IOException {
    return connect(fx.proxy(), t);
  }

  private static Socket connect(InetSocketAddress proxy, TestTarget t) throws IOException {
    Socket s = new Socket(proxy.getAddress(), proxy.getPort());
    s.setSoTimeout(60_000);
    String target = t.address() + ":" + t.port();
    s.getOutputStream()
        .write(
            ("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n")
                .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
    InputStream in = s.getInputStream();
    StringBuilder head = new StringBuilder();
    while (!head.toString().endsWith("\r\n\r\n")) {
      int b = in.read();
      assertThat(b).as("the proxy's answer ended early: %s", head).isNotNegative();
      head.append((char) b);
    }
    assertThat(head.toString()).startsWith("HTTP/1.1 200");
    return s;
  }

  /** What the server spliced, by direction: to_target (sent to the agent), to_client (received). */
  private double serverSpliced(String direction) throws IOException {
    return MetricsTest.Scrape.of(fx.server.metrics().registry())
        .get("egress_tunnel_server_spliced_bytes_total", "direction", direction);
  }

  /** What the agent spliced: to_target (received from the server), to_client (sent to it). */
  private double agentSpliced(String direction) throws IOException {
    return MetricsTest.Scrape.of(agent.metrics().registry())
        .get("egress_tunnel_agent_spliced_bytes_total", "direction", direction);
  }

  @Test
  void echoesOnSeveralStreamsAreSplicedBothWaysAndArriveWhole() {
    long bytes = 24L << 20;
    int streams = 4;
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          TestTarget echo = target(TestTarget::echo);
          List<CompletableFuture<Transfers.Result>> results = new ArrayList<>();
          for (int i = 0; i < streams; i++) {
            long seed = 100 + i;
            Socket s = connect(echo);
            results.add(
                CompletableFuture.supplyAsync(
                    () -> {
                      try (s) {
                        return Transfers.echo(s, bytes, seed);
                      } catch (Exception e) {
                        throw new IllegalStateException(e);
                      }
                    }));
          }
          for (CompletableFuture<Transfers.Result> f : results) {
            Transfers.Result r = f.get(100, TimeUnit.SECONDS);
            assertThat(r.received()).isEqualTo(bytes);
            assertThat(r.receivedSha()).isEqualTo(r.sentSha());
          }
          // Most of what was sent went through pipes: a sender splices unless its socket was
          // empty when it looked. A receiver splices when its stream's pipe has room; the echo
          // target here reads slowly enough to fill it now and then.
          double half = streams * bytes * 0.5;
          assertThat(serverSpliced("to_target")).as("server sends").isGreaterThan(half);
          assertThat(agentSpliced("to_client")).as("agent sends").isGreaterThan(half);
          assertThat(agentSpliced("to_target")).as("agent receives").isPositive();
          assertThat(serverSpliced("to_client")).as("server receives").isPositive();
        });
  }

  /**
   * A client that stops reading fills its socket, then its stream's pipe: the rest of its frames is
   * read into the process instead, within its window, while another stream on the same session goes
   * on being spliced. When the client reads again, every byte is there, in order.
   */
  @Test
  void aStalledReaderFallsBackToReadingAndLosesNothingNorHoldsOthersUp() {
    long bulk = 48L << 20;
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          TestTarget source =
              target(
                  s -> {
                    Transfers.writeRandom(s.getOutputStream(), bulk, 7);
                    s.shutdownOutput();
                    s.getInputStream().read(); // until the client closes
                  });
          TestTarget echo = target(TestTarget::echo);
          try (Socket stalled = connect(source)) {
            stalled.setReceiveBufferSize(64 * 1024);
            // Until the stalled stream has filled its socket, its pipe and its window: the agent
            // has no credit left to send with.
            await()
                .atMost(Duration.ofSeconds(30))
                .until(
                    () ->
                        MetricsTest.Scrape.of(agent.metrics().registry())
                                .get("egress_tunnel_agent_streams_credit_stalled")
                            == 1);
            try (Socket other = connect(echo)) {
              Transfers.Result r = Transfers.echo(other, 16L << 20, 9);
              assertThat(r.receivedSha()).isEqualTo(r.sentSha());
            }
            var md = Transfers.sha256();
            assertThat(Transfers.readAll(stalled.getInputStream(), md)).isEqualTo(bulk);
            assertThat(Transfers.hex(md)).isEqualTo(expectedSha(bulk, 7));
          }
          assertThat(serverSpliced("to_client")).isPositive();
          assertThat(agentSpliced("to_client")).isPositive();
        });
  }

  /**
   * The target resets its connection while its answer is being spliced: the client reads a reset,
   * not a clean end, and the session goes on splicing for the next stream.
   */
  @Test
  void aResetInTheMiddleOfSplicedFramesEndsOnlyItsStream() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(60),
        () -> {
          TestTarget resetter =
              target(
                  s -> {
                    Transfers.writeRandom(s.getOutputStream(), 8L << 20, 3);
                    s.setSoLinger(true, 0);
                    s.close();
                  });
          try (Socket c = connect(resetter)) {
            InputStream in = c.getInputStream();
            byte[] buf = new byte[64 * 1024];
            long total = 0;
            IOException failure = null;
            try {
              for (int n; (n = in.read(buf)) > 0; ) {
                total += n;
              }
            } catch (IOException e) {
              failure = e;
            }
            assertThat(failure)
                .as("a cut answer of %d bytes must end in an error, not an EOF", total)
                .isNotNull();
          }
          TestTarget echo = target(TestTarget::echo);
          try (Socket s = connect(echo)) {
            Transfers.Result r = Transfers.echo(s, 8L << 20, 11);
            assertThat(r.receivedSha()).isEqualTo(r.sentSha());
          }
        });
  }

  /**
   * A spliced stream held quiet for several ping timeouts, then used again, both ways, three times,
   * and ended by half-closes.
   */
  @Test
  void aSplicedStreamHeldQuietGoesOnWhole() {
    assertTimeoutPreemptively(
        Duration.ofSeconds(60),
        () -> {
          TestTarget echo = target(TestTarget::echo);
          try (Socket s = connect(echo)) {
            OutputStream out = s.getOutputStream();
            InputStream in = s.getInputStream();
            for (int round = 0; round < 3; round++) {
              byte[] chunk = new byte[4 << 20];
              new java.util.SplittableRandom(round).nextBytes(chunk);
              CompletableFuture<Void> write =
                  CompletableFuture.runAsync(
                      () -> {
                        try {
                          out.write(chunk);
                          out.flush();
                        } catch (IOException e) {
                          throw new IllegalStateException(e);
                        }
                      });
              byte[] back = in.readNBytes(chunk.length);
              write.get(30, TimeUnit.SECONDS);
              assertThat(back).isEqualTo(chunk);
              // Quiet for three ping timeouts, the session up all along: the tap waits for a
              // header with nothing buffered, and pings and pongs pass it both ways.
              Duration quiet = PING_TIMEOUT.multipliedBy(3);
              TunnelSession session = fx.session("node-sp");
              await()
                  .during(quiet)
                  .atMost(quiet.plusSeconds(5))
                  .until(() -> session.channel().isActive());
            }
            s.shutdownOutput();
            assertThat(in.read()).isEqualTo(-1);
          }
          for (String direction : List.of("to_target", "to_client")) {
            assertThat(agentSpliced(direction)).as("agent " + direction).isPositive();
            assertThat(serverSpliced(direction)).as("server " + direction).isPositive();
          }
        });
  }

  private static String expectedSha(long bytes, long seed) throws IOException {
    var discard =
        new OutputStream() {
          @Override
          public void write(int b) {}

          @Override
          public void write(byte[] b, int off, int len) {}
        };
    return Transfers.writeRandom(discard, bytes, seed);
  }

  /** With {@code --splice off}, no tap is installed and nothing is spliced. */
  @Test
  void theSwitchTurnsSplicingOff() throws Exception {
    fx.close();
    fx = null;
    Transport.splice(false);
    try (TunnelFixture off = new TunnelFixture(EgressMode.POD)) {
      TunnelAgent a =
          off.startAgent(off.agentConfig("node-sp", "127.0.44.1", POD_CIDR, EgressMode.POD));
      assertThat(Transport.splicing()).isFalse();
      TestTarget echo = target(TestTarget::echo);
      try (Socket s = connect(off.proxy(), echo)) {
        Transfers.Result r = Transfers.echo(s, 8L << 20, 5);
        assertThat(r.receivedSha()).isEqualTo(r.sentSha());
      }
      var agentMetrics = MetricsTest.Scrape.of(a.metrics().registry());
      var serverMetrics = MetricsTest.Scrape.of(off.server.metrics().registry());
      for (String direction : List.of("to_target", "to_client")) {
        assertThat(
                agentMetrics.get("egress_tunnel_agent_spliced_bytes_total", "direction", direction))
            .isZero();
        assertThat(
                serverMetrics.get(
                    "egress_tunnel_server_spliced_bytes_total", "direction", direction))
            .isZero();
      }
    } finally {
      Transport.splice(true);
    }
  }
}
