package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.sun.net.httpserver.HttpServer;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.agent.policy.AllowRule;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.session.TunnelStream;
import io.egresstunnel.routing.EgressMode;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The tunnel end to end on loopback: CONNECT → server → websocket → agent → target and back, with
 * real sockets. Nodes: node-a (127.0.1.1, pods 127.1.1.0/24) and node-b (127.0.1.2, pods
 * 127.1.2.0/24) in pod mode; node-c runs its agent in agent mode, so it refuses its own pod CIDR
 * (127.1.3.0/24) except what --allow lets through.
 */
class TunnelEndToEndTest {
  private static TunnelFixture fx;
  private static TestTarget echoA;
  private static TestTarget echoB;
  private static TestTarget echoC;
  private static TunnelAgent agentC;

  @BeforeAll
  static void start() throws Exception {
    fx = new TunnelFixture(EgressMode.POD);
    fx.startAgent(fx.agentConfig("node-a", "127.0.1.1", "127.1.1.0/24", EgressMode.POD));
    fx.startAgent(fx.agentConfig("node-b", "127.0.1.2", "127.1.2.0/24", EgressMode.POD));
    agentC =
        fx.startAgent(
            fx.agentConfig("node-c", "127.0.1.3", "127.1.3.0/24", EgressMode.AGENT)
                .withAllow(List.of(AllowRule.parse("127.1.3.10/32"))));
    echoA = new TestTarget("127.1.1.10", 0, TestTarget::echo);
    echoB = new TestTarget("127.1.2.10", 0, TestTarget::echo);
    echoC = new TestTarget("127.1.3.10", 0, TestTarget::echo);
  }

  @AfterAll
  static void stop() throws Exception {
    echoA.close();
    echoB.close();
    echoC.close();
    fx.close();
  }

  private static String target(TestTarget t) {
    return t.address() + ":" + t.port();
  }

  @Test
  void apiserverRequestGets200OnlyAndNothingFollowsUntilTheTargetSpeaks() throws Exception {
    ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), target(echoA));
    assertThat(a.status()).isEqualTo(200);
    assertThat(a.head()).isEqualTo("HTTP/1.1 200 Connection established\r\n\r\n");
    try (Socket s = a.socket()) {
      s.setSoTimeout(500);
      InputStream in = s.getInputStream();
      // The echo target is silent until spoken to: any byte here would break the apiserver.
      assertThatThrownBy(in::read).isInstanceOf(SocketTimeoutException.class);
      s.setSoTimeout(10_000);
      s.getOutputStream().write("ping".getBytes(StandardCharsets.US_ASCII));
      assertThat(new String(in.readNBytes(4), StandardCharsets.US_ASCII)).isEqualTo("ping");
    }
  }

  @Test
  void curlFetchesAFileThroughTheTunnel(@TempDir Path dir) throws Exception {
    byte[] content = new byte[3 * 1024 * 1024 + 17];
    new Random(7).nextBytes(content);
    HttpServer http = HttpServer.create(new InetSocketAddress("127.1.2.20", 0), 64);
    http.createContext(
        "/file",
        ex -> {
          ex.sendResponseHeaders(200, content.length);
          try (OutputStream out = ex.getResponseBody()) {
            out.write(content);
          }
        });
    http.start();
    try {
      Path out = dir.resolve("file");
      Process curl =
          new ProcessBuilder(
                  "curl",
                  "-sS",
                  "--fail",
                  "-p",
                  "-x",
                  "http://127.0.0.1:" + fx.proxy().getPort(),
                  "http://127.1.2.20:" + http.getAddress().getPort() + "/file",
                  "-o",
                  out.toString())
              .redirectErrorStream(true)
              .start();
      assertThat(curl.waitFor(60, TimeUnit.SECONDS)).isTrue();
      String output = new String(curl.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(curl.exitValue()).as("curl: " + output).isZero();
      assertThat(Files.readAllBytes(out)).isEqualTo(content);
    } finally {
      http.stop(0);
    }
  }

  @Test
  void closedPortGets502NotA200() throws Exception {
    ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), "127.1.1.10:1");
    assertThat(a.status()).isEqualTo(502);
    assertThat(a.head()).startsWith("HTTP/1.1 502 Bad Gateway");
    assertThat(a.body()).contains("connection refused").contains("127.1.1.10:1");
  }

  @Test
  void forbiddenDialGets403WhileA100MiBTransferOnTheSameAgentStaysIntact() throws Exception {
    ConnectClient.Answer bulk = ConnectClient.connect(fx.proxy(), target(echoC));
    assertThat(bulk.status()).isEqualTo(200);
    CompletableFuture<Transfers.Result> transfer =
        CompletableFuture.supplyAsync(
            () -> {
              try (Socket s = bulk.socket()) {
                return Transfers.echo(s, 100L << 20, 42);
              } catch (Exception e) {
                throw new IllegalStateException(e);
              }
            });
    for (int i = 0; i < 20; i++) {
      ConnectClient.Answer refused = ConnectClient.connect(fx.proxy(), "127.1.3.11:80");
      assertThat(refused.status()).isEqualTo(403);
      assertThat(refused.body()).contains("127.1.3.11:80").contains("node-c");
    }
    Transfers.Result r = transfer.get(120, TimeUnit.SECONDS);
    assertThat(r.received()).isEqualTo(100L << 20);
    assertThat(r.receivedSha()).isEqualTo(r.sentSha());
    assertThat(agentC.sessions()).hasSize(1); // the refusals did not touch the session
  }

  @Test
  void twoHundredFiftySixMiBEachWayThroughOneStream() throws Exception {
    ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), target(echoA));
    assertThat(a.status()).isEqualTo(200);
    try (Socket s = a.socket()) {
      Transfers.Result r = Transfers.echo(s, 256L << 20, 1);
      assertThat(r.received()).isEqualTo(256L << 20);
      assertThat(r.receivedSha()).isEqualTo(r.sentSha());
    }
  }

  @Test
  void sixtyFourConcurrentStreamsOfRandomSizesAllArriveIntact() throws Exception {
    Random random = new Random(64);
    List<CompletableFuture<Void>> all = new ArrayList<>();
    for (int i = 0; i < 64; i++) {
      TestTarget t = i % 2 == 0 ? echoA : echoB;
      long size = random.nextInt(4 << 20);
      long seed = i;
      all.add(
          CompletableFuture.runAsync(
              () -> {
                try {
                  ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), target(t));
                  assertThat(a.status()).isEqualTo(200);
                  try (Socket s = a.socket()) {
                    Transfers.Result r = Transfers.echo(s, size, seed);
                    assertThat(r.received()).isEqualTo(size);
                    assertThat(r.receivedSha()).isEqualTo(r.sentSha());
                  }
                } catch (Exception e) {
                  throw new IllegalStateException(e);
                }
              }));
    }
    CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).get(180, TimeUnit.SECONDS);
  }

  @Test
  void halfCloseLetsTheTargetAnswerAfterTheClientsEof() throws Exception {
    byte[] tail = new byte[1 << 20];
    new Random(3).nextBytes(tail);
    try (TestTarget hasher =
        new TestTarget(
            "127.1.1.30",
            0,
            s -> {
              MessageDigest md = Transfers.sha256();
              Transfers.readAll(s.getInputStream(), md); // until the client's EOF
              OutputStream out = s.getOutputStream();
              out.write((Transfers.hex(md) + "\n").getBytes(StandardCharsets.US_ASCII));
              out.write(tail);
              out.flush();
            })) {
      ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), target(hasher));
      assertThat(a.status()).isEqualTo(200);
      try (Socket s = a.socket()) {
        String sentSha = Transfers.writeRandom(s.getOutputStream(), 5 << 20, 9);
        s.shutdownOutput();
        byte[] answer = s.getInputStream().readAllBytes();
        String line = new String(answer, 0, 65, StandardCharsets.US_ASCII);
        assertThat(line).isEqualTo(sentSha + "\n");
        byte[] rest = java.util.Arrays.copyOfRange(answer, 65, answer.length);
        assertThat(rest).isEqualTo(tail);
      }
    }
  }

  @Test
  void aStalledReaderHoldsAtMostItsWindowAndDoesNotStopAnotherStream() throws Exception {
    try (TestTarget source =
        new TestTarget(
            "127.1.2.30",
            0,
            s -> {
              byte[] chunk = new byte[64 * 1024];
              OutputStream out = s.getOutputStream();
              for (int i = 0; i < 4096; i++) { // up to 256 MiB, far beyond every buffer
                out.write(chunk);
              }
            })) {
      ConnectClient.Answer stalled = ConnectClient.connect(fx.proxy(), target(source));
      assertThat(stalled.status()).isEqualTo(200);
      try (Socket never = stalled.socket()) {
        never.setReceiveBufferSize(64 * 1024);
        // Wait until the stalled stream has used up its credit: the agent stops reading its target.
        TunnelSession agentSession = fx.agents.get(1).sessions().get(0); // node-b
        await()
            .atMost(Duration.ofSeconds(30))
            .until(() -> stalledAgentStream(agentSession) != null);
        // Another stream on the same agent moves 32 MiB meanwhile, intact.
        ConnectClient.Answer other = ConnectClient.connect(fx.proxy(), target(echoB));
        assertThat(other.status()).isEqualTo(200);
        try (Socket s = other.socket()) {
          Transfers.Result r = Transfers.echo(s, 32L << 20, 5);
          assertThat(r.receivedSha()).isEqualTo(r.sentSha());
        }
        // Memory held for the stalled stream stays within its window on each side.
        int window = Limits.DEFAULT_INITIAL_WINDOW;
        for (TunnelStream st : fx.streams("node-b")) {
          assertThat(st.bufferedToLocal()).as("server side, " + st).isLessThanOrEqualTo(window);
        }
        // The agent reads its target no further than the credit: it holds nothing beyond it.
        TunnelStream agentSide = stalledAgentStream(agentSession);
        assertThat(agentSide.sendWindow()).isZero();
        assertThat(agentSide.heldForPeer()).isZero();
      }
    }
  }

  /** The agent-side stream that has no credit left, or null. */
  private static TunnelStream stalledAgentStream(TunnelSession s) throws Exception {
    List<TunnelStream> streams = s.eventLoop().submit(s::streams).get(10, TimeUnit.SECONDS);
    return streams.stream()
        .filter(st -> st.state() == TunnelStream.State.OPEN && st.sendWindow() == 0)
        .findFirst()
        .orElse(null);
  }

  @Test
  void everyByteATargetSendsBeforeClosingArrives() throws Exception {
    long size = 300L << 20;
    try (TestTarget source =
        new TestTarget(
            "127.1.1.40",
            0,
            s -> Transfers.writeRandom(s.getOutputStream(), size, 77))) { // then closes fully
      for (int i = 0; i < 3; i++) {
        ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), target(source));
        assertThat(a.status()).isEqualTo(200);
        try (Socket s = a.socket()) {
          MessageDigest md = Transfers.sha256();
          assertThat(Transfers.readAll(s.getInputStream(), md)).isEqualTo(size);
        }
      }
    }
  }

  @Test
  void notConnectGets405() throws Exception {
    ConnectClient.Answer a =
        ConnectClient.send(
            fx.proxy(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
    assertThat(a.status()).isEqualTo(405);
    assertThat(a.head()).containsIgnoringCase("allow: CONNECT");
  }

  @Test
  void malformedTargetGets400() throws Exception {
    for (String bad : List.of("no-port", "host:0", "host:70000", "::1:80", "[zz]:80", "h:1x")) {
      ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), bad);
      assertThat(a.status()).as(bad).isEqualTo(400);
      assertThat(a.body()).as(bad).contains("CONNECT target");
    }
    ConnectClient.Answer garbage =
        ConnectClient.send(
            fx.proxy(), "\u0001\u0002garbage\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
    assertThat(garbage.status()).isEqualTo(400);
  }

  @Test
  void oversizedHeadersGet431() throws Exception {
    String big = "X-Filler: " + "a".repeat(10_000) + "\r\n";
    ConnectClient.Answer a =
        ConnectClient.send(
            fx.proxy(),
            ("CONNECT 127.1.1.10:1 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big + "\r\n")
                .getBytes(StandardCharsets.US_ASCII));
    assertThat(a.status()).isEqualTo(431);
  }

  @Test
  void directTargetsAreDialledByTheServer() throws Exception {
    try (TestTarget direct = new TestTarget("127.0.0.1", 0, TestTarget::echo)) {
      ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), target(direct));
      assertThat(a.status()).isEqualTo(200);
      try (Socket s = a.socket()) {
        Transfers.Result r = Transfers.echo(s, 8L << 20, 11);
        assertThat(r.receivedSha()).isEqualTo(r.sentSha());
      }
    }
    assertThat(ConnectClient.connect(fx.proxy(), "127.0.0.1:1").status()).isEqualTo(502);
  }

  @Test
  void ipv6TargetInBracketsIsParsed() throws Exception {
    // No agent declares ::1, so the server dials it directly.
    try (TestTarget v6 = new TestTarget("::1", 0, TestTarget::echo)) {
      ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), "[::1]:" + v6.port());
      assertThat(a.status()).isEqualTo(200);
      try (Socket s = a.socket()) {
        Transfers.Result r = Transfers.echo(s, 1 << 20, 2);
        assertThat(r.receivedSha()).isEqualTo(r.sentSha());
      }
    }
  }

  static String hex(byte[] b) {
    return HexFormat.of().formatHex(b);
  }

  static InetAddress ip(String s) throws Exception {
    return InetAddress.getByName(s);
  }
}
