package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.routing.EgressMode;
import io.netty.pkitesting.X509Bundle;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Half-close and integrity on every CONNECT listener (TCP, TLS, Unix socket) and both routes
 * (through an agent, and direct), on the transport this JVM runs: epoll by default, and the build
 * runs this class again with {@code -Degress.transport=nio}, where the Unix socket is refused
 * (UnixSocketConnectTest). Each case moves 32 MiB each way with real sockets and compares SHA-256
 * digests on both ends, in both half-close orders and against a target that answers only after the
 * client's EOF (the case that lost data over the Unix socket).
 */
class HalfCloseMatrixTest {
  private static final int BYTES = 32 << 20;
  private static final long CLIENT_SEED = 11;
  private static final long TARGET_SEED = 7;

  enum Listener {
    TCP,
    TLS,
    UDS
  }

  enum Route {
    AGENT,
    DIRECT
  }

  /** What the target does, and so which side half-closes first. */
  enum Order {
    /** Echoes until the client's EOF, then ends its side: the client half-closes first. */
    ECHO,
    /** Sends everything and ends its side, then reads the client's bytes to EOF. */
    TARGET_FIRST,
    /** Reads the client's bytes to EOF, and only then answers and closes. */
    ANSWER_AFTER_EOF
  }

  private static Path dir;
  private static X509Bundle ca;
  private static X509Bundle apiserver;
  private static TunnelFixture plain; // TCP and Unix socket
  private static TunnelFixture tls;
  private static Path udsPath;
  private static String expectedFromTarget;
  private static final BlockingQueue<String> receivedByTargets = new LinkedBlockingQueue<>();
  private static final List<TestTarget> targets = new ArrayList<>();

  /** Target ports by address (agent of the plain server, of the TLS server, direct) and order. */
  private static final Map<String, Map<Order, Integer>> ports = new java.util.HashMap<>();

  /** By address, the port of a target that resets its connection in the middle of its answer. */
  private static final Map<String, Integer> resetting = new java.util.HashMap<>();

  @BeforeAll
  static void start() throws Exception {
    dir = Files.createTempDirectory("half-close");
    ca = TestPki.ca("CN=half-close test CA");
    X509Bundle serverCert = TestPki.server(ca);
    apiserver = TestPki.client(ca, "CN=kube-apiserver");
    ServerConfig base =
        ServerConfig.plain(
            EgressMode.POD,
            new InetSocketAddress("127.0.0.1", 0),
            new InetSocketAddress("127.0.0.1", 0));
    udsPath = dir.resolve("connect.sock");
    plain = new TunnelFixture(Transport.supportsDomainHalfClosure() ? base.withUds(udsPath) : base);
    tls = new TunnelFixture(base.withTls(TestPki.serverFiles(serverCert, ca), null));
    plain.startAgent(plain.agentConfig("node-plain", "127.0.5.1", "127.5.1.0/24", EgressMode.POD));
    tls.startAgent(tls.agentConfig("node-tls", "127.0.5.2", "127.5.2.0/24", EgressMode.POD));
    expectedFromTarget = Transfers.writeRandom(OutputStream.nullOutputStream(), BYTES, TARGET_SEED);
    for (String address : List.of("127.5.1.10", "127.5.2.10", "127.0.0.1")) {
      Map<Order, Integer> byOrder = new EnumMap<>(Order.class);
      for (Order order : Order.values()) {
        TestTarget t = new TestTarget(address, 0, s -> serve(order, s));
        targets.add(t);
        byOrder.put(order, t.port());
      }
      ports.put(address, byOrder);
      TestTarget r = new TestTarget(address, 0, HalfCloseMatrixTest::resetMidAnswer);
      targets.add(r);
      resetting.put(address, r.port());
    }
  }

  @AfterAll
  static void stop() throws Exception {
    for (TestTarget t : targets) {
      t.close();
    }
    if (plain != null) {
      plain.close();
    }
    if (tls != null) {
      tls.close();
    }
  }

  static Stream<Arguments> listenersAndRoutes() {
    List<Arguments> all = new ArrayList<>();
    for (Listener l : Listener.values()) {
      for (Route r : Route.values()) {
        all.add(Arguments.of(l, r));
      }
    }
    return all.stream();
  }

  static Stream<Arguments> cases() {
    List<Arguments> all = new ArrayList<>();
    for (Listener l : Listener.values()) {
      for (Route r : Route.values()) {
        for (Order o : Order.values()) {
          all.add(Arguments.of(l, r, o));
        }
      }
    }
    return all.stream();
  }

  @ParameterizedTest(name = "{0} listener, {1} route, {2}")
  @MethodSource("cases")
  void everyByteArrivesBothWays(Listener listener, Route route, Order order) {
    receivedByTargets.clear();
    String address = targetAddress(listener, route);
    String target = address + ":" + ports.get(address).get(order);
    assertTimeoutPreemptively(
        Duration.ofSeconds(90),
        () -> {
          try (Conn c = open(listener)) {
            c.connect(target);
            switch (order) {
              case ECHO -> {
                Transfers.Result r = sendAndReceive(c, CLIENT_SEED);
                assertThat(r.received()).isEqualTo(BYTES);
                assertThat(r.receivedSha()).isEqualTo(r.sentSha());
              }
              case TARGET_FIRST -> {
                var md = Transfers.sha256();
                assertThat(Transfers.readAll(c.in(), md)).isEqualTo(BYTES);
                assertThat(Transfers.hex(md)).isEqualTo(expectedFromTarget);
                // The target has ended its side; this side still sends everything.
                String sent = Transfers.writeRandom(c.out(), BYTES, CLIENT_SEED);
                c.shutdownOutput();
                assertThat(receivedByTargets.poll(60, TimeUnit.SECONDS)).isEqualTo(sent);
              }
              case ANSWER_AFTER_EOF -> {
                Transfers.Result r = sendAndReceive(c, CLIENT_SEED);
                assertThat(r.received()).isEqualTo(BYTES);
                assertThat(r.receivedSha()).isEqualTo(expectedFromTarget);
                assertThat(receivedByTargets.poll(60, TimeUnit.SECONDS)).isEqualTo(r.sentSha());
              }
            }
          }
        });
  }

  /**
   * A target that resets its connection in the middle of its answer: the client must read an error,
   * not a clean end, so that a cut transfer never looks complete. A Unix socket has no reset, so
   * there the client reads an EOF, and only the length can tell (docs/operations.md).
   */
  @ParameterizedTest(name = "{0} listener, {1} route")
  @MethodSource("listenersAndRoutes")
  void aTargetsResetReachesTheClientAsAReset(Listener listener, Route route) {
    String address = targetAddress(listener, route);
    assertTimeoutPreemptively(
        Duration.ofSeconds(30),
        () -> {
          try (Conn c = open(listener)) {
            c.connect(address + ":" + resetting.get(address));
            c.out().write('x');
            c.out().flush();
            byte[] buf = new byte[64 * 1024];
            long got = 0;
            IOException error = null;
            try {
              for (int n; (n = c.in().read(buf)) > 0; ) {
                got += n;
              }
            } catch (IOException e) {
              error = e;
            }
            if (listener == Listener.UDS) {
              assertThat(error).as("a Unix socket ends with an EOF").isNull();
            } else {
              assertThat(error)
                  .as("after %d bytes, the end of a reset stream must be an error", got)
                  .isNotNull();
            }
          }
        });
  }

  private static String targetAddress(Listener listener, Route route) {
    if (listener == Listener.UDS) {
      assumeTrue(Transport.supportsDomainHalfClosure(), "--uds is refused on " + Transport.name());
    }
    if (route == Route.DIRECT) {
      return "127.0.0.1";
    }
    return listener == Listener.TLS ? "127.5.2.10" : "127.5.1.10";
  }

  /**
   * Sends a few MiB, then resets the connection (SO_LINGER 0) with the client still reading. It
   * waits for the client's byte first, so that the reset cannot come before the tunnel exists (that
   * would be a failed dial, a 502).
   */
  private static void resetMidAnswer(Socket s) throws IOException {
    Transfers.writeRandom(s.getOutputStream(), 4 << 20, TARGET_SEED);
    s.getInputStream().read();
    s.setSoLinger(true, 0);
    s.close();
  }

  /** Konnectivity's GRPC on the TLS listener too (ALPN h2), beside CONNECT: 4 MiB echo intact. */
  @org.junit.jupiter.api.Test
  void grpcOverTheTlsListener() throws Exception {
    try (KonnectivityClient client =
        KonnectivityClient.overTls(
            tls.proxy(),
            ca.toTempRootCertPem(),
            apiserver.toTempCertChainPem(),
            apiserver.toTempPrivateKeyPem())) {
      KonnectivityClient.Conn c =
          client.dial("127.5.2.10:" + ports.get("127.5.2.10").get(Order.ECHO)).conn();
      byte[] chunk = new byte[64 * 1024];
      new java.util.Random(1).nextBytes(chunk);
      var sent = Transfers.sha256();
      for (int i = 0; i < 64; i++) {
        c.write(chunk, 0, chunk.length);
        sent.update(chunk);
      }
      var got = Transfers.sha256();
      long n = 0;
      while (n < 64L * chunk.length) {
        byte[] b = c.read(20);
        got.update(b);
        n += b.length;
      }
      assertThat(Transfers.hex(got)).isEqualTo(Transfers.hex(sent));
      assertThat(c.close()).isEmpty();
    }
  }

  /** Writes {@code BYTES} and half-closes while reading to EOF, concurrently. */
  private static Transfers.Result sendAndReceive(Conn c, long seed) throws Exception {
    CompletableFuture<String> sent =
        CompletableFuture.supplyAsync(
            () -> {
              try {
                String sha = Transfers.writeRandom(c.out(), BYTES, seed);
                c.shutdownOutput();
                return sha;
              } catch (IOException e) {
                throw new UncheckedIOException(e);
              }
            });
    var md = Transfers.sha256();
    long n = Transfers.readAll(c.in(), md);
    return new Transfers.Result(sent.get(60, TimeUnit.SECONDS), Transfers.hex(md), n);
  }

  private static void serve(Order order, Socket s) throws IOException {
    switch (order) {
      case ECHO -> TestTarget.echo(s);
      case TARGET_FIRST -> {
        Transfers.writeRandom(s.getOutputStream(), BYTES, TARGET_SEED);
        s.shutdownOutput();
        var md = Transfers.sha256();
        Transfers.readAll(s.getInputStream(), md);
        receivedByTargets.add(Transfers.hex(md));
      }
      case ANSWER_AFTER_EOF -> {
        var md = Transfers.sha256();
        Transfers.readAll(s.getInputStream(), md);
        receivedByTargets.add(Transfers.hex(md));
        Transfers.writeRandom(s.getOutputStream(), BYTES, TARGET_SEED);
      }
    }
  }

  private static Conn open(Listener listener) throws Exception {
    return switch (listener) {
      case TCP -> {
        Socket s = new Socket();
        s.connect(plain.proxy(), 5_000);
        yield new SocketConn(s);
      }
      case TLS -> {
        SSLSocket s =
            TlsClient.open(
                tls.proxy(),
                apiserver.toKeyManagerFactory().getKeyManagers(),
                ca.toTrustManagerFactory().getTrustManagers(),
                "TLSv1.3");
        s.setSoTimeout(0);
        yield new SocketConn(s);
      }
      case UDS -> {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(udsPath));
        yield new UnixConn(ch);
      }
    };
  }

  /** A client connection of any listener: CONNECT, then the raw byte stream. */
  private interface Conn extends AutoCloseable {
    InputStream in() throws IOException;

    OutputStream out() throws IOException;

    void shutdownOutput() throws IOException;

    @Override
    void close() throws IOException;

    /** Sends the apiserver's CONNECT and reads exactly the 200's head. */
    default void connect(String target) throws IOException {
      out().write(ConnectClient.apiserverRequest(target));
      out().flush();
      byte[] head = in().readNBytes(39);
      String answer = new String(head, StandardCharsets.US_ASCII);
      if (!answer.startsWith("HTTP/1.1 200")) {
        answer += new String(in().readNBytes(400), StandardCharsets.UTF_8); // the reason
      }
      assertThat(answer).isEqualTo("HTTP/1.1 200 Connection established\r\n\r\n");
    }
  }

  /** TCP or TLS; an SSLSocket half-closes with close_notify (TLS 1.3). */
  private record SocketConn(Socket s) implements Conn {
    @Override
    public InputStream in() throws IOException {
      return s.getInputStream();
    }

    @Override
    public OutputStream out() throws IOException {
      return s.getOutputStream();
    }

    @Override
    public void shutdownOutput() throws IOException {
      s.shutdownOutput();
    }

    @Override
    public void close() throws IOException {
      s.close();
    }
  }

  /**
   * A Unix socket. Its streams call the channel directly: Channels.newInputStream and
   * newOutputStream share one lock, so a blocked read would stall the concurrent write.
   */
  private record UnixConn(SocketChannel ch) implements Conn {
    @Override
    public InputStream in() {
      return new InputStream() {
        @Override
        public int read() throws IOException {
          byte[] one = new byte[1];
          return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
          return ch.read(ByteBuffer.wrap(b, off, len));
        }
      };
    }

    @Override
    public OutputStream out() {
      return new OutputStream() {
        @Override
        public void write(int b) throws IOException {
          write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
          ByteBuffer buf = ByteBuffer.wrap(b, off, len);
          while (buf.hasRemaining()) {
            ch.write(buf);
          }
        }
      };
    }

    @Override
    public void shutdownOutput() throws IOException {
      ch.shutdownOutput();
    }

    @Override
    public void close() throws IOException {
      ch.close();
    }
  }
}
