package io.egresstunnel.server;

import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.session.TunnelStream;
import io.egresstunnel.routing.EgressMode;
import java.net.InetSocketAddress;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;

/** One tunnel-server and its agents in this JVM, on loopback, started and stopped together. */
final class TunnelFixture implements AutoCloseable {
  final TunnelServer server;
  final List<TunnelAgent> agents = new ArrayList<>();

  TunnelFixture(EgressMode mode) throws Exception {
    this(mode, UnaryOperator.identity());
  }

  TunnelFixture(EgressMode mode, UnaryOperator<ServerConfig.Limits> limits) throws Exception {
    this(
        ServerConfig.plain(
                mode, new InetSocketAddress("127.0.0.1", 0), new InetSocketAddress("127.0.0.1", 0))
            .withLimits(limits.apply(ServerConfig.Limits.defaults())));
  }

  TunnelFixture(ServerConfig config) throws Exception {
    this(new TunnelServer(config).start());
  }

  /** Takes over a started server. */
  TunnelFixture(TunnelServer started) {
    server = started;
  }

  InetSocketAddress proxy() {
    return server.connectAddress();
  }

  URI agentUrl() {
    return URI.create("ws://127.0.0.1:" + server.agentAddress().getPort());
  }

  /** A config for node {@code name} at {@code nodeIp} whose pod CIDR is {@code podCidr}. */
  AgentConfig agentConfig(String name, String nodeIp, String podCidr, EgressMode mode) {
    AgentConfig c = AgentConfig.simple(agentUrl(), name, List.of(Cidr.parseAddress(nodeIp)), mode);
    return podCidr == null ? c : c.withPodCidrs(List.of(Cidr.parse(podCidr)));
  }

  /** Starts an agent and waits until the server has its session. */
  TunnelAgent startAgent(AgentConfig config) throws Exception {
    TunnelAgent agent = new TunnelAgent(config).start();
    agents.add(agent);
    await()
        .atMost(Duration.ofSeconds(20))
        .until(() -> server.registry().session(config.nodeName()) != null);
    return agent;
  }

  TunnelSession session(String node) {
    return server.registry().session(node);
  }

  /** The server-side streams of a node's session, read on the session's event loop. */
  List<TunnelStream> streams(String node) throws Exception {
    TunnelSession s = session(node);
    return s.eventLoop().submit(s::streams).get(10, TimeUnit.SECONDS);
  }

  @Override
  public void close() {
    for (TunnelAgent a : agents) {
      a.close();
    }
    server.close();
  }
}
