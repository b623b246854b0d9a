package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.routing.EgressMode;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Two tunnel-servers (s1, s2; server count 2) serve one cluster of two nodes, in pod mode: node-a
 * (127.0.11.1, pods 127.11.1.0/24) and node-b (127.0.11.2, pods 127.11.2.0/24), each with an echo
 * pod. node-a's agent is given both servers' URLs; node-b's only one load-balanced URL ({@link
 * RoundRobinBalancer}), and finds both servers through it.
 */
class HighAvailabilityTest {
  private static final Duration SYNC_INTERVAL = Duration.ofMillis(200);

  private final List<TunnelServer> servers = new ArrayList<>();
  private final List<TunnelAgent> agents = new ArrayList<>();
  private TestTarget podA;
  private TestTarget podB;
  private RoundRobinBalancer balancer;

  @BeforeEach
  void targets() throws Exception {
    podA = new TestTarget("127.11.1.10", 0, TestTarget::echo);
    podB = new TestTarget("127.11.2.10", 0, TestTarget::echo);
  }

  @AfterEach
  void stop() throws Exception {
    for (TunnelAgent a : agents) {
      a.close();
    }
    for (TunnelServer s : servers) {
      s.close();
    }
    if (balancer != null) {
      balancer.close();
    }
    podA.close();
    podB.close();
  }

  @Test
  void everyAgentHoldsEveryServerAndAnyServerReachesAnyNode() throws Exception {
    TunnelServer s1 = startServer("s1", 0);
    TunnelServer s2 = startServer("s2", 0);
    balancer = new RoundRobinBalancer(List.of(s1.agentAddress(), s2.agentAddress()));
    TunnelAgent a = startAgent("node-a", "127.0.11.1", "127.11.1.0/24", url(s1), url(s2));
    TunnelAgent b = startAgent("node-b", "127.0.11.2", "127.11.2.0/24", balancerUrl());

    awaitEveryAgentHoldsEveryServer(a, b);
    assertThat(a.serverCount()).isEqualTo(2);
    assertThat(b.serverCount()).isEqualTo(2);
    assertThat(b.sessions()).extracting(s -> s.serverHello().serverId()).contains("s1", "s2");

    long seed = 1;
    for (TunnelServer server : List.of(s1, s2)) {
      assertCarriedBy(server, podA, "node-a", "node-b", seed++);
      assertCarriedBy(server, podB, "node-b", "node-a", seed++);
    }
  }

  @Test
  void behindABalancerThatPicksOneServerTheAgentHoldsItOnceAndKeepsTrying() throws Exception {
    TunnelServer s1 = startServer("s1", 0);
    TunnelServer s2 = startServer("s2", 0);
    balancer = new RoundRobinBalancer(List.of(s1.agentAddress()));
    TunnelAgent b = startAgent("node-b", "127.0.11.2", "127.11.2.0/24", balancerUrl());

    // Every further tunnel lands on s1 again: a duplicate, closed, tried again later.
    AtomicInteger mostOpen = new AtomicInteger();
    await()
        .atMost(Duration.ofSeconds(20))
        .until(
            () -> {
              mostOpen.accumulateAndGet(balancer.open.get(), Math::max);
              return balancer.accepted.get() >= 4;
            });
    assertThat(b.serverIds()).containsExactly("s1");
    assertThat(b.serverCount()).isEqualTo(2);
    // At most the session to s1 and ServerConnection.MAX_ATTEMPTS_PER_URL (4) attempts.
    assertThat(mostOpen.get()).isLessThanOrEqualTo(5);
    assertThat(s2.registry().session("node-b")).isNull();

    // Once the balancer spreads connections, the agent finds s2 as well. (No CONNECT before: one
    // routed to a duplicate in the moment before its go-away arrives would get 503.)
    balancer.backends(List.of(s1.agentAddress(), s2.agentAddress()));
    awaitHolds(b, Set.of("s1", "s2"));
    await().atMost(Duration.ofSeconds(20)).until(() -> s2.registry().session("node-b") != null);
    assertCarriedBy(s1, podB, "node-b", null, 1);
    assertCarriedBy(s2, podB, "node-b", null, 2);
  }

  /**
   * Two servers at different addresses with one id (two servers on one host given the same
   * --server-id): the agent can hold only one. It says so at WARN, naming both addresses and the
   * id, once however often it finds the clash again; the server it leaves hears why and warns too;
   * and the agent's /readyz shows it holds 1 of the 2 servers.
   */
  @Test
  void twoServersWithOneIdAreReportedOnBothSides() throws Exception {
    ch.qos.logback.classic.Logger agentLog =
        (ch.qos.logback.classic.Logger)
            org.slf4j.LoggerFactory.getLogger("io.egresstunnel.agent.ServerConnection");
    ch.qos.logback.classic.Logger serverLog =
        (ch.qos.logback.classic.Logger)
            org.slf4j.LoggerFactory.getLogger(io.egresstunnel.server.agents.AgentRegistry.class);
    ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> lines =
        new ch.qos.logback.core.read.ListAppender<>();
    lines.start();
    agentLog.addAppender(lines);
    serverLog.addAppender(lines);
    try {
      TunnelServer s1 = startServer("twin", 0);
      TunnelServer s2 = startServer("twin", 0);
      AgentConfig config =
          AgentConfig.simple(
                  url(s1), "node-a", List.of(Cidr.parseAddress("127.0.11.1")), EgressMode.POD)
              .withServers(List.of(url(s1), url(s2)))
              .withAdminListen(new InetSocketAddress("127.0.0.1", 0));
      TunnelAgent a =
          new TunnelAgent(config.withLimits(config.limits().withSyncInterval(SYNC_INTERVAL)))
              .start();
      agents.add(a);

      // The clash is found again at every sync interval: wait for a few rounds.
      await()
          .atMost(Duration.ofSeconds(30))
          .until(
              () ->
                  a.serverIds().equals(Set.of("twin"))
                      && MetricsTest.Scrape.of(a.metrics().registry())
                              .get("egress_tunnel_agent_reconnects_total")
                          >= 4
                      && warnings(lines, "AgentRegistry").size() >= 1);
      String p1 = "127.0.0.1:" + s1.agentAddress().getPort();
      String p2 = "127.0.0.1:" + s2.agentAddress().getPort();
      assertThat(warnings(lines, "ServerConnection"))
          .singleElement()
          .satisfies(
              m ->
                  assertThat(m)
                      .contains("servers at ", "both report server id twin", p1, p2, "--server-id")
                      .doesNotContain("127.0.0.1/"));
      assertThat(warnings(lines, "AgentRegistry"))
          .singleElement()
          .satisfies(
              m ->
                  assertThat(m)
                      .contains(
                          "agent for node node-a",
                          "server id twin is also the id of the server at",
                          p1,
                          p2,
                          "--server-id"));
      // One server has the agent; the other saw each of its sessions closed as a duplicate.
      assertThat(servers.stream().filter(s -> s.registry().session("node-a") != null).count())
          .isEqualTo(1);

      java.net.http.HttpResponse<String> ready =
          java.net.http.HttpClient.newHttpClient()
              .send(
                  java.net.http.HttpRequest.newBuilder(
                          URI.create("http://127.0.0.1:" + a.adminAddress().getPort() + "/readyz"))
                      .build(),
                  java.net.http.HttpResponse.BodyHandlers.ofString());
      assertThat(ready.statusCode()).isEqualTo(200);
      assertThat(ready.body()).isEqualTo("ok: 1/2 servers\n");
    } finally {
      agentLog.detachAppender(lines);
      serverLog.detachAppender(lines);
    }
  }

  private static List<String> warnings(
      ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> lines,
      String logger) {
    synchronized (lines.list) {
      return lines.list.stream()
          .filter(e -> e.getLevel() == ch.qos.logback.classic.Level.WARN)
          .filter(e -> e.getLoggerName().endsWith("." + logger))
          .map(ch.qos.logback.classic.spi.ILoggingEvent::getFormattedMessage)
          .toList();
    }
  }

  @Test
  void agentsReconnectToARestartedServer() throws Exception {
    TunnelServer s1 = startServer("s1", 0);
    TunnelServer s2 = startServer("s2", 0);
    int s1Port = s1.agentAddress().getPort();
    balancer = new RoundRobinBalancer(List.of(s1.agentAddress(), s2.agentAddress()));
    TunnelAgent a = startAgent("node-a", "127.0.11.1", "127.11.1.0/24", url(s1), url(s2));
    TunnelAgent b = startAgent("node-b", "127.0.11.2", "127.11.2.0/24", balancerUrl());
    awaitEveryAgentHoldsEveryServer(a, b);

    s1.close();
    servers.remove(s1);
    awaitHolds(a, Set.of("s2"));
    awaitHolds(b, Set.of("s2"));
    assertCarriedBy(s2, podA, "node-a", "node-b", 1);

    TunnelServer restarted = startServer("s1", s1Port);
    awaitEveryAgentHoldsEveryServer(a, b);
    assertThat(restarted.registry().session("node-a")).isNotNull();
    assertCarriedBy(restarted, podA, "node-a", "node-b", 2);
    assertCarriedBy(restarted, podB, "node-b", "node-a", 3);
    assertCarriedBy(s2, podB, "node-b", "node-a", 4);
  }

  @Test
  void aDrainingAgentFinishesItsStreamsAndTakesNoNewOnes() throws Exception {
    TunnelServer s1 = startServer("s1", 0);
    TunnelServer s2 = startServer("s2", 0);
    balancer = new RoundRobinBalancer(List.of(s1.agentAddress(), s2.agentAddress()));
    TunnelAgent a = startAgent("node-a", "127.0.11.1", "127.11.1.0/24", url(s1), url(s2));
    TunnelAgent b = startAgent("node-b", "127.0.11.2", "127.11.2.0/24", balancerUrl());
    awaitEveryAgentHoldsEveryServer(a, b);

    // A transfer through node-a's agent, paused halfway while the agent drains.
    ConnectClient.Answer answer = ConnectClient.connect(s1.connectAddress(), target(podA));
    assertThat(answer.status()).isEqualTo(200);
    try (Socket s = answer.socket()) {
      MessageDigest received = Transfers.sha256();
      AtomicLong receivedBytes = new AtomicLong();
      CompletableFuture<Void> reader =
          CompletableFuture.runAsync(() -> readAll(s, received, receivedBytes));
      MessageDigest sent = Transfers.sha256();
      SplittableRandom random = new SplittableRandom(42);
      OutputStream out = s.getOutputStream();
      long half = 16L << 20;
      writeRandom(out, half, random, sent);
      await().atMost(Duration.ofSeconds(30)).until(() -> receivedBytes.get() == half);

      CompletableFuture<Boolean> drained =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  return a.drain(Duration.ofSeconds(60));
                } catch (InterruptedException e) {
                  throw new IllegalStateException(e);
                }
              });
      await()
          .atMost(Duration.ofSeconds(20))
          .until(
              () ->
                  s1.registry().session("node-a") == null
                      && s2.registry().session("node-a") == null);
      for (TunnelServer server : List.of(s1, s2)) {
        ConnectClient.Answer refused = ConnectClient.connect(server.connectAddress(), target(podA));
        assertThat(refused.status()).isEqualTo(503);
        assertThat(refused.body()).contains("node-a");
        assertCarriedBy(server, podB, "node-b", null, 7); // the other node is not affected
      }
      assertThat(drained).isNotDone(); // the transfer still holds s1's session open

      writeRandom(out, half, random, sent);
      s.shutdownOutput();
      reader.get(60, TimeUnit.SECONDS);
      assertThat(receivedBytes.get()).isEqualTo(2 * half);
      assertThat(Transfers.hex(received)).isEqualTo(Transfers.hex(sent));

      assertThat(drained.get(30, TimeUnit.SECONDS)).isTrue();
    }
    assertThat(a.sessions()).isEmpty();
    assertThat(a.serverIds()).isEmpty();
    for (TunnelServer server : List.of(s1, s2)) {
      await().atMost(Duration.ofSeconds(20)).until(() -> sessionsOf(server, "node-a").isEmpty());
    }
    // Nothing reconnects: the agent stays gone while node-b is served as before.
    await()
        .during(Duration.ofMillis(500))
        .atMost(Duration.ofSeconds(5))
        .until(() -> sessionsOf(s1, "node-a").isEmpty() && sessionsOf(s2, "node-a").isEmpty());
    assertCarriedBy(s2, podB, "node-b", null, 8);
  }

  // ---- helpers -------------------------------------------------------------------------------

  private TunnelServer startServer(String id, int agentPort) throws Exception {
    ServerConfig plain =
        ServerConfig.plain(
            EgressMode.POD,
            new InetSocketAddress("127.0.0.1", 0),
            new InetSocketAddress("127.0.0.1", agentPort));
    ServerConfig config =
        new ServerConfig(
            plain.mode(),
            plain.connectListen(),
            plain.udsPath(),
            plain.agentListen(),
            plain.adminListen(),
            plain.tls(),
            plain.agentTls(),
            id,
            2,
            plain.limits(),
            plain.kubernetes(),
            plain.security());
    TunnelServer server = new TunnelServer(config).start();
    servers.add(server);
    return server;
  }

  private TunnelAgent startAgent(String node, String ip, String podCidr, URI... urls)
      throws Exception {
    AgentConfig config =
        AgentConfig.simple(urls[0], node, List.of(Cidr.parseAddress(ip)), EgressMode.POD)
            .withServers(List.of(urls))
            .withPodCidrs(List.of(Cidr.parse(podCidr)));
    config = config.withLimits(config.limits().withSyncInterval(SYNC_INTERVAL));
    TunnelAgent agent = new TunnelAgent(config).start();
    agents.add(agent);
    return agent;
  }

  private static URI url(TunnelServer server) {
    return URI.create("ws://127.0.0.1:" + server.agentAddress().getPort());
  }

  private URI balancerUrl() {
    return URI.create("ws://127.0.0.1:" + balancer.port());
  }

  private static String target(TestTarget t) {
    return t.address() + ":" + t.port();
  }

  private static void awaitHolds(TunnelAgent agent, Set<String> ids) {
    await().atMost(Duration.ofSeconds(30)).until(() -> agent.serverIds().equals(ids));
  }

  /** Each agent holds s1 and s2, and every server has a session for every node. */
  private void awaitEveryAgentHoldsEveryServer(TunnelAgent... agentList) {
    for (TunnelAgent agent : agentList) {
      awaitHolds(agent, Set.of("s1", "s2"));
    }
    await()
        .atMost(Duration.ofSeconds(30))
        .until(
            () ->
                servers.stream()
                    .allMatch(
                        s ->
                            s.registry().session("node-a") != null
                                && s.registry().session("node-b") != null));
  }

  private static List<TunnelSession> sessionsOf(TunnelServer server, String node) {
    return server.registry().allSessions().stream()
        .filter(s -> s.agentHello() != null && node.equals(s.agentHello().nodeName()))
        .toList();
  }

  /**
   * A CONNECT through {@code server} to {@code pod} echoes 1 MiB intact, carried by {@code node}'s
   * session on that server and not by {@code other}'s (if given).
   */
  private static void assertCarriedBy(
      TunnelServer server, TestTarget pod, String node, String other, long seed) throws Exception {
    TunnelSession session = server.registry().session(node);
    TunnelSession otherSession = other == null ? null : server.registry().session(other);
    long before = session.streamsOpened();
    long otherBefore = otherSession == null ? 0 : otherSession.streamsOpened();
    ConnectClient.Answer answer = ConnectClient.connect(server.connectAddress(), target(pod));
    assertThat(answer.status()).as(answer.head() + answer.body()).isEqualTo(200);
    try (Socket s = answer.socket()) {
      s.getOutputStream().write("hi".getBytes(StandardCharsets.US_ASCII));
      assertThat(new String(s.getInputStream().readNBytes(2), StandardCharsets.US_ASCII))
          .isEqualTo("hi");
      Transfers.Result r = Transfers.echo(s, 1 << 20, seed);
      assertThat(r.received()).isEqualTo(1 << 20);
      assertThat(r.receivedSha()).isEqualTo(r.sentSha());
    }
    assertThat(session.streamsOpened()).isEqualTo(before + 1);
    if (otherSession != null) {
      assertThat(otherSession.streamsOpened()).isEqualTo(otherBefore);
    }
  }

  private static void writeRandom(
      OutputStream out, long bytes, SplittableRandom random, MessageDigest md) throws Exception {
    byte[] buf = new byte[64 * 1024];
    for (long left = bytes; left > 0; left -= buf.length) {
      random.nextBytes(buf);
      md.update(buf);
      out.write(buf);
    }
    out.flush();
  }

  private static void readAll(Socket s, MessageDigest md, AtomicLong count) {
    try {
      InputStream in = s.getInputStream();
      byte[] buf = new byte[64 * 1024];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
        count.addAndGet(n);
      }
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }
}
