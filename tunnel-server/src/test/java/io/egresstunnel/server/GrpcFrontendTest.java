package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.session.TunnelStream;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.admin.ServerStatus;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The apiserver's {@code proxyProtocol: GRPC} over the Unix socket, with a client that behaves as
 * konnectivity-client does (KonnectivityClient): the same listener serves HTTP CONNECT too, told
 * apart by the HTTP/2 preface.
 */
class GrpcFrontendTest {
  private static final String NODE_IP = "127.0.7.1";
  private static Path dir;
  private static Path uds;
  private static TunnelFixture fx;
  private static TunnelAgent agent;
  private static TestTarget echo;
  private static TestTarget get;
  private static final int GET_BYTES = 1 << 20;

  @BeforeAll
  static void start() throws Exception {
    assumeTrue(Transport.supportsDomainHalfClosure(), "--uds needs epoll");
    dir = Files.createTempDirectory("grpc");
    uds = dir.resolve("konnectivity-server.socket");
    fx = udsServer(uds);
    agent = fx.startAgent(fx.agentConfig("node-g", NODE_IP, "127.7.1.0/24", EgressMode.POD));
    echo = new TestTarget("127.7.1.10", 0, TestTarget::echo);
    get =
        new TestTarget(
            "127.7.1.11",
            0,
            s -> {
              s.getInputStream().readNBytes(10); // the whole request, "GET /logs\n"
              Transfers.writeRandom(s.getOutputStream(), GET_BYTES, 21);
            });
  }

  @AfterAll
  static void stop() throws Exception {
    if (fx != null) {
      echo.close();
      get.close();
      fx.close();
    }
  }

  /**
   * A server in pod mode with the CONNECT listener on loopback and on the Unix socket {@code sock}.
   */
  private static TunnelFixture udsServer(Path sock) throws Exception {
    return new TunnelFixture(udsConfig(sock));
  }

  private static ServerConfig udsConfig(Path sock) {
    return ServerConfig.plain(
            EgressMode.POD,
            new InetSocketAddress("127.0.0.1", 0),
            new InetSocketAddress("127.0.0.1", 0))
        .withUds(sock);
  }

  private static String target(TestTarget t) {
    return t.address() + ":" + t.port();
  }

  @Test
  void aGetThroughOneTunnelArrivesWholeAndEndsWithCloseResponse() throws Exception {
    try (KonnectivityClient client = KonnectivityClient.overUds(uds)) {
      KonnectivityClient.Dialled d = client.dial(target(get));
      assertThat(d.error()).isNull();
      assertThat(d.conn().connectId).isNotZero();
      d.conn().write("GET /logs\n".getBytes(StandardCharsets.US_ASCII), 0, 10);
      MessageDigest md = Transfers.sha256();
      long n = 0;
      for (byte[] b; (b = d.conn().read(20)) != null; ) {
        md.update(b);
        n += b.length;
      }
      assertThat(n).isEqualTo(GET_BYTES);
      assertThat(Transfers.hex(md))
          .isEqualTo(Transfers.writeRandom(OutputStream.nullOutputStream(), GET_BYTES, 21));
      // The target closed: CLOSE_RSP came unasked, without an error.
      assertThat(d.conn().closeResponse.get(10, TimeUnit.SECONDS)).isEmpty();
    }
  }

  @Test
  void thirtyTwoMiBEchoIntactThenCloseRequestGetsCloseResponse() throws Exception {
    int total = 32 << 20;
    try (KonnectivityClient client = KonnectivityClient.overUds(uds)) {
      KonnectivityClient.Conn conn = client.dial(target(echo)).conn();
      CompletableFuture<String> sent =
          CompletableFuture.supplyAsync(
              () -> {
                MessageDigest md = Transfers.sha256();
                SplittableRandom r = new SplittableRandom(5);
                byte[] buf = new byte[32 * 1024];
                for (int left = total; left > 0; left -= buf.length) {
                  for (int i = 0; i < buf.length; i++) {
                    buf[i] = (byte) r.nextInt();
                  }
                  md.update(buf);
                  conn.write(buf, 0, buf.length);
                }
                return Transfers.hex(md);
              });
      MessageDigest md = Transfers.sha256();
      long n = 0;
      while (n < total) {
        byte[] b = conn.read(30);
        assertThat(b).as("echo ended after %d bytes", n).isNotNull();
        md.update(b);
        n += b.length;
      }
      assertThat(Transfers.hex(md)).isEqualTo(sent.get(30, TimeUnit.SECONDS));
      assertThat(conn.close()).isEmpty();
    }
  }

  @Test
  void aDialToAClosedPortAnswersWithAnError() throws Exception {
    MetricsTest.Scrape before = scrape();
    try (KonnectivityClient client = KonnectivityClient.overUds(uds)) {
      long started = System.nanoTime();
      KonnectivityClient.Dialled d = client.dial("127.7.1.12:9");
      assertThat(d.error()).contains("refused").contains("127.7.1.12:9");
      assertThat(Duration.ofNanos(System.nanoTime() - started))
          .isLessThan(fx.server.config().limits().dialTimeout());
    }
    // Counted as GRPC, beside CONNECT's series.
    MetricsTest.Scrape after = scrape();
    String s = "egress_tunnel_server_";
    assertThat(after.delta(before, s + "grpc_dials_total", "result", "error")).isEqualTo(1);
    assertThat(
            after.delta(
                before,
                s + "dial_failures_total",
                "protocol",
                "grpc",
                "route",
                "agent",
                "reason",
                "refused"))
        .isEqualTo(1);
    assertThat(
            after.delta(
                before,
                s + "dial_failures_total",
                "protocol",
                "connect",
                "route",
                "agent",
                "reason",
                "refused"))
        .isZero();
  }

  private static MetricsTest.Scrape scrape() throws java.io.IOException {
    return MetricsTest.Scrape.of(fx.server.metrics().registry());
  }

  @Test
  void aNodeWithoutAnAgentAnswersWithAnErrorAtOnce() throws Exception {
    try (TunnelFixture other = udsServer(dir.resolve("other.sock"));
        KonnectivityClient client = KonnectivityClient.overUds(dir.resolve("other.sock"))) {
      TunnelAgent gone =
          other.startAgent(
              other.agentConfig("node-x", "127.0.7.2", "127.7.2.0/24", EgressMode.POD));
      gone.close();
      await().atMost(Duration.ofSeconds(10)).until(() -> other.session("node-x") == null);
      KonnectivityClient.Dialled d = client.dial("127.0.7.2:10250");
      assertThat(d.error())
          .isEqualTo("no agent connected for node node-x (target 127.0.7.2:10250)");
    }
  }

  @Test
  void aPendingDialWhoseAgentGoesAwayGetsAnErrorLongBeforeTheDialTimeout() throws Exception {
    // A dial timeout far beyond the wait below: an answer within it cannot be the timeout's.
    Path sock = dir.resolve("leaving.sock");
    try (TunnelFixture other =
            new TunnelFixture(
                udsConfig(sock)
                    .withLimits(
                        ServerConfig.Limits.defaults().withDialTimeout(Duration.ofMinutes(5))));
        AgentFailureTest.Blackhole hole = new AgentFailureTest.Blackhole("127.7.3.20");
        KonnectivityClient client = KonnectivityClient.overUds(dir.resolve("leaving.sock"))) {
      TunnelAgent leaving =
          other.startAgent(
              other.agentConfig("node-l", "127.0.7.3", "127.7.3.0/24", EgressMode.POD));
      KonnectivityClient.Conn pending = client.dialNoWait(hole.target());
      await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> AgentFailureTest.pendingDials(other, "node-l") == 1);
      leaving.close();
      String error =
          (String)
              KonnectivityClient.field(pending.dialResponse.get(60, TimeUnit.SECONDS), "error");
      assertThat(error).containsAnyOf("session", "shutting down");
    }
  }

  @Test
  void aPendingDialThatTheClientGivesUpIsFreed() throws Exception {
    try (AgentFailureTest.Blackhole hole = new AgentFailureTest.Blackhole("127.7.1.20");
        KonnectivityClient client = KonnectivityClient.overUds(uds)) {
      KonnectivityClient.Conn pending = client.dialNoWait(hole.target());
      await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> AgentFailureTest.pendingDials(fx, "node-g") == 1);
      pending.cancelDial();
      await()
          .atMost(Duration.ofSeconds(5))
          .until(() -> AgentFailureTest.pendingDials(fx, "node-g") == 0);
    }
  }

  @Test
  void connectAndGrpcClientsShareTheUnixSocket() throws Exception {
    try (SocketChannel connect = SocketChannel.open(StandardProtocolFamily.UNIX);
        KonnectivityClient client = KonnectivityClient.overUds(uds)) {
      connect.connect(UnixDomainSocketAddress.of(uds));
      connect.write(ByteBuffer.wrap(ConnectClient.apiserverRequest(target(echo))));
      KonnectivityClient.Conn grpc = client.dial(target(echo)).conn();
      ByteBuffer head = ByteBuffer.allocate(39);
      while (head.hasRemaining() && connect.read(head) >= 0) {
        // the 200's head
      }
      assertThat(new String(head.array(), StandardCharsets.US_ASCII)).startsWith("HTTP/1.1 200");
      connect.write(ByteBuffer.wrap("via connect".getBytes(StandardCharsets.US_ASCII)));
      grpc.write("via grpc".getBytes(StandardCharsets.US_ASCII), 0, 8);
      ByteBuffer back = ByteBuffer.allocate(11);
      while (back.hasRemaining() && connect.read(back) >= 0) {
        // the echo
      }
      assertThat(new String(back.array(), StandardCharsets.US_ASCII)).isEqualTo("via connect");
      assertThat(new String(grpc.read(10), StandardCharsets.US_ASCII)).isEqualTo("via grpc");
      // /status tells the two apart.
      ServerStatus.Report report = ServerStatus.collect(fx.server).get(10, TimeUnit.SECONDS);
      assertThat(report.streams())
          .filteredOn(st -> st.target().equals(target(echo)))
          .extracting(ServerStatus.Stream::protocol)
          .contains("connect", "grpc");
      assertThat(grpc.close()).isEmpty();
    }
  }

  /** The apiserver's way: a new gRPC connection per dial, here 500 of them, 50 at a time. */
  @Test
  void fiveHundredDialsFiftyAtATimeEachOnItsOwnConnection() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(50);
    try {
      List<Future<String>> results = new ArrayList<>();
      for (int i = 0; i < 500; i++) {
        String msg = "dial " + i;
        results.add(
            pool.submit(
                () -> {
                  try (KonnectivityClient client = KonnectivityClient.overUds(uds)) {
                    KonnectivityClient.Conn c = client.dial(target(echo)).conn();
                    byte[] b = msg.getBytes(StandardCharsets.US_ASCII);
                    c.write(b, 0, b.length);
                    String got = new String(c.read(20), StandardCharsets.US_ASCII);
                    c.close();
                    return got;
                  }
                }));
      }
      for (int i = 0; i < 500; i++) {
        assertThat(results.get(i).get(60, TimeUnit.SECONDS)).isEqualTo("dial " + i);
      }
    } finally {
      pool.shutdownNow();
    }
  }

  /**
   * Newer client code: one shared gRPC connection, one call per dial. The client resets every call
   * it has finished: 400 of them in a row must not trip HTTP/2's rapid-reset guard (Netty's default
   * closes the connection after 200 in 30 s).
   */
  @Test
  void dialsShareOneConnection() throws Exception {
    try (KonnectivityClient client = KonnectivityClient.overUds(uds)) {
      for (int i = 0; i < 400; i++) {
        KonnectivityClient.Conn c = client.dial(target(echo)).conn();
        c.write(new byte[] {(byte) i}, 0, 1);
        assertThat(c.read(10)).containsExactly((byte) i);
        assertThat(c.close()).isEmpty();
      }
      List<KonnectivityClient.Conn> conns = new ArrayList<>();
      for (int i = 0; i < 20; i++) {
        conns.add(client.dial(target(echo)).conn());
      }
      for (int i = 0; i < conns.size(); i++) {
        byte[] b = ("call " + i).getBytes(StandardCharsets.US_ASCII);
        conns.get(i).write(b, 0, b.length);
      }
      for (int i = 0; i < conns.size(); i++) {
        assertThat(new String(conns.get(i).read(10), StandardCharsets.US_ASCII))
            .isEqualTo("call " + i);
        assertThat(conns.get(i).close()).isEmpty();
      }
    }
  }

  /** A plain TCP CONNECT listener also speaks GRPC (for clients other than the apiserver). */
  @Test
  void theTcpListenerServesGrpcToo() throws Exception {
    try (KonnectivityClient client = KonnectivityClient.overTcp(fx.proxy())) {
      KonnectivityClient.Conn c = client.dial(target(echo)).conn();
      c.write("tcp".getBytes(StandardCharsets.US_ASCII), 0, 3);
      assertThat(new String(c.read(10), StandardCharsets.US_ASCII)).isEqualTo("tcp");
      assertThat(c.close()).isEmpty();
    }
    try (Socket s = new Socket()) {
      s.connect(fx.proxy());
      assertThat(s.isConnected()).isTrue(); // and CONNECT still works beside it (other tests)
    }
  }

  /** A malformed packet, DATA for another connection, or a second dial end that call only. */
  @Test
  void aBrokenCallEndsAloneAndItsNeighbourGoesOn() throws Exception {
    try (KonnectivityClient client = KonnectivityClient.overUds(uds)) {
      KonnectivityClient.Conn good = client.dial(target(echo)).conn();

      KonnectivityClient.RawCall garbage = client.raw();
      garbage.send(new byte[] {0x12, 0x7f, 0x01}); // a DialRequest longer than the packet
      assertThat(garbage.conn.callEnd.get(10, TimeUnit.SECONDS))
          .hasMessageContaining("INTERNAL")
          .hasMessageContaining("malformed packet");

      KonnectivityClient.Conn wrongId = client.dial(target(echo)).conn();
      wrongId.connectId += 1_000_000;
      wrongId.write(new byte[] {1}, 0, 1);
      assertThat(wrongId.callEnd.get(10, TimeUnit.SECONDS)).hasMessageContaining("is not open");

      KonnectivityClient.Conn twice = client.dial(target(echo)).conn();
      twice.send(
          KonnectivityClient.packet(
              0, "dialRequest", KonnectivityClient.dialRequest("tcp", target(echo), 77)));
      assertThat(twice.callEnd.get(10, TimeUnit.SECONDS)).hasMessageContaining("a second DIAL_REQ");

      good.write("still here".getBytes(StandardCharsets.US_ASCII), 0, 10);
      assertThat(new String(good.read(10), StandardCharsets.US_ASCII)).isEqualTo("still here");
      assertThat(good.close()).isEmpty();
    }
  }

  /**
   * A client that stops reading stalls its own stream only: what the server holds for it stays
   * within the stream's credit window while a download floods it, and another client's transfer
   * beside it goes on at full speed.
   */
  @Test
  void aSlowReaderHoldsAtMostItsWindowAndStallsNoOtherStream() throws Exception {
    try (TestTarget flood =
            new TestTarget(
                "127.7.1.13", 0, s -> Transfers.writeRandom(s.getOutputStream(), 1L << 40, 3));
        KonnectivityClient.SlowReader slow = KonnectivityClient.slowReader(uds, target(flood))) {
      TunnelStream stream = streamTo(flood);
      // Wait until the flood has stalled: nothing more arrives from the agent.
      long[] last = {-1};
      await()
          .atMost(Duration.ofSeconds(20))
          .pollInterval(Duration.ofMillis(500))
          .until(
              () -> {
                long now = onLoop(stream, TunnelStream::bytesFromPeer);
                boolean stalled = now == last[0];
                last[0] = now;
                return stalled;
              });
      int held = onLoop(stream, s -> (long) s.bufferedToLocal()).intValue();
      assertThat(held)
          .as("bytes held for the slow reader")
          .isLessThanOrEqualTo(Limits.DEFAULT_INITIAL_WINDOW);

      // A neighbour's 8 MiB echo goes through meanwhile.
      try (KonnectivityClient client = KonnectivityClient.overUds(uds)) {
        KonnectivityClient.Conn c = client.dial(target(echo)).conn();
        byte[] chunk = new byte[64 * 1024];
        long n = 0;
        for (int i = 0; i < 128; i++) {
          c.write(chunk, 0, chunk.length);
        }
        while (n < 128L * chunk.length) {
          n += c.read(20).length;
        }
        assertThat(c.close()).isEmpty();
      }
      assertThat(onLoop(stream, TunnelStream::bytesFromPeer)).isEqualTo(last[0]);
    }
  }

  /** The server's stream to {@code t}, once it is open. */
  private static TunnelStream streamTo(TestTarget t) {
    return await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () ->
                fx.streams("node-g").stream()
                    .filter(s -> s.target().equals(target(t)))
                    .findFirst()
                    .orElse(null),
            java.util.Objects::nonNull);
  }

  private static Long onLoop(
      TunnelStream stream, java.util.function.Function<TunnelStream, Long> read) throws Exception {
    return stream.session().eventLoop().submit(() -> read.apply(stream)).get(5, TimeUnit.SECONDS);
  }

  /** A drain refuses new GRPC dials with the reason and lets an open call finish. */
  @Test
  void aDrainRefusesNewDialsAndLetsOpenCallsFinish() throws Exception {
    Path sock = dir.resolve("drain.sock");
    try (TunnelFixture other = udsServer(sock);
        KonnectivityClient client = KonnectivityClient.overUds(sock)) {
      other.startAgent(other.agentConfig("node-d", "127.0.7.3", "127.7.3.0/24", EgressMode.POD));
      try (TestTarget drainEcho = new TestTarget("127.7.3.10", 0, TestTarget::echo)) {
        KonnectivityClient.Conn open = client.dial(target(drainEcho)).conn();
        CompletableFuture<Void> drain =
            CompletableFuture.runAsync(
                () -> {
                  try {
                    other.server.drain(Duration.ofSeconds(60));
                  } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                  }
                });
        await().atMost(Duration.ofSeconds(10)).until(other.server::isDraining);

        KonnectivityClient.Dialled refused = client.dial(target(drainEcho));
        assertThat(refused.error()).contains("shutting down");

        open.write("still open".getBytes(StandardCharsets.US_ASCII), 0, 10);
        assertThat(new String(open.read(10), StandardCharsets.US_ASCII)).isEqualTo("still open");
        assertThat(drain).isNotDone();
        assertThat(open.close()).isEmpty();
        drain.get(30, TimeUnit.SECONDS); // the last stream ended: the drain is over
      }
    }
  }

  /**
   * The other way: a target that reads nothing stalls the client's upload at the stream's credit.
   * The server stops reading the call (so HTTP/2 flow control holds the client back) and holds at
   * most one read for it.
   */
  @Test
  void aTargetThatReadsNothingStallsItsUploadWithinTheWindow() throws Exception {
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    try (TestTarget deaf = deafTarget("127.7.1.14", release);
        KonnectivityClient client = KonnectivityClient.overUds(uds)) {
      KonnectivityClient.Conn c = client.dial(target(deaf)).conn();
      TunnelStream stream = stallUpload(c, deaf);
      long sent = onLoop(stream, TunnelStream::bytesToPeer);
      assertThat(onLoop(stream, s -> (long) s.heldForPeer()))
          .as("bytes held for a stalled upload")
          .isLessThanOrEqualTo(256 * 1024);
      assertThat(sent).as("bytes sent towards the deaf target").isLessThan(8L << 20);
      release.countDown();
    }
  }

  /**
   * On a shared connection, a client that cancels a call whose upload is stalled (its target reads
   * nothing) frees the stream at once: the reset is not stuck behind the frames the call holds.
   */
  @Test
  void aCancelledStalledCallIsFreedAtOnce() throws Exception {
    java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
    try (TestTarget deaf = deafTarget("127.7.1.15", release);
        KonnectivityClient client = KonnectivityClient.overUds(uds)) {
      KonnectivityClient.Conn c = client.dial(target(deaf)).conn();
      stallUpload(c, deaf);

      c.requests.onError(io.grpc.Status.CANCELLED.asRuntimeException()); // RST_STREAM

      await()
          .atMost(Duration.ofSeconds(5))
          .until(
              () -> fx.streams("node-g").stream().noneMatch(s -> s.target().equals(target(deaf))));
      release.countDown();
    }
  }

  /** A target that reads nothing until {@code release}. */
  private static TestTarget deafTarget(String address, java.util.concurrent.CountDownLatch release)
      throws java.io.IOException {
    return new TestTarget(
        address,
        0,
        s -> {
          try {
            release.await(60, TimeUnit.SECONDS);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        });
  }

  /**
   * Uploads 8 MiB to a target that reads nothing, far more than windows and socket buffers hold,
   * and waits until the server's stream to it is stalled on credit.
   */
  private static TunnelStream stallUpload(KonnectivityClient.Conn c, TestTarget deaf)
      throws Exception {
    byte[] chunk = new byte[64 * 1024];
    for (int i = 0; i < 128; i++) {
      c.write(chunk, 0, chunk.length);
    }
    TunnelStream stream = streamTo(deaf);
    await()
        .atMost(Duration.ofSeconds(20))
        .until(() -> onLoop(stream, s -> s.isCreditStalled() ? 1L : 0L) == 1L);
    return stream;
  }
}
