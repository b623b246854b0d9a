package io.egresstunnel.bench.demo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.ServerConfig;
import io.egresstunnel.server.TunnelServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The demo's proof of where the bytes went: its counters read from a real server's and agent's
 * admin listeners name the process that dialled, and the server's and the agent's byte counts
 * agree.
 */
class DemoCountersTest {
  private static final String POD = "127.0.8.2";
  private static final String ELSEWHERE = "127.0.8.9";

  @Test
  void countersNameWhoDialledAndServerAndAgentAgreeOnEveryByte() throws Exception {
    try (ServerSocket echo = new ServerSocket(0, 50, InetAddress.getByName(POD));
        ServerSocket closed = new ServerSocket(0, 50, InetAddress.getByName(ELSEWHERE));
        TunnelServer server =
            new TunnelServer(
                    ServerConfig.plain(
                            EgressMode.POD,
                            new InetSocketAddress("127.0.0.1", 0),
                            new InetSocketAddress("127.0.0.1", 0))
                        .withAdminListen(new InetSocketAddress("127.0.0.1", 0)))
                .start();
        TunnelAgent agent =
            new TunnelAgent(
                    AgentConfig.simple(
                            URI.create("ws://127.0.0.1:" + server.agentAddress().getPort()),
                            "node-a",
                            List.of(InetAddress.getByName("127.0.8.1")),
                            EgressMode.POD)
                        .withPodCidrs(List.of(Cidr.parse(POD + "/32")))
                        .withAdminListen(new InetSocketAddress("127.0.0.1", 0)))
                .start()) {
      int closedPort = closed.getLocalPort();
      closed.close(); // a port nothing listens on: the direct dial is refused
      Thread echoes = new Thread(() -> echoOnce(echo), "echo");
      echoes.setDaemon(true);
      echoes.start();
      await()
          .atMost(Duration.ofSeconds(20))
          .until(() -> server.registry().session("node-a") != null);
      DemoCounters counters =
          new DemoCounters(
              hostPort(server.adminAddress()), Map.of("node-a", hostPort(agent.adminAddress())));

      DemoCounters.Snapshot before = counters.read();
      byte[] payload = new byte[100_000];
      Arrays.fill(payload, (byte) 'x');
      try (Socket s = connect(server.connectAddress(), POD + ":" + echo.getLocalPort())) {
        assertThat(readHead(s.getInputStream())).startsWith("HTTP/1.1 200");
        s.getOutputStream().write(payload);
        s.shutdownOutput();
        assertThat(s.getInputStream().readAllBytes()).isEqualTo(payload);
      }
      await()
          .atMost(Duration.ofSeconds(10))
          .untilAsserted(
              () -> {
                DemoCounters.Snapshot after = counters.read();
                assertThat(after.dialledBy(before)).isEqualTo("node-a");
                DemoCounters.Bytes both = new DemoCounters.Bytes(100_000, 100_000);
                assertThat(after.agentBytes()).containsEntry("node-a", both);
                assertThat(after.serverPerNode()).containsEntry("node-a", both);
                assertThat(after.serverViaAgents()).isEqualTo(both);
                assertThat(after.serverDirect()).isEqualTo(new DemoCounters.Bytes(0, 0));
              });

      DemoCounters.Snapshot beforeDirect = counters.read();
      try (Socket s = connect(server.connectAddress(), ELSEWHERE + ":" + closedPort)) {
        assertThat(readHead(s.getInputStream())).startsWith("HTTP/1.1 502");
      }
      await()
          .atMost(Duration.ofSeconds(10))
          .untilAsserted(
              () -> assertThat(counters.read().dialledBy(beforeDirect)).isEqualTo("direct"));
      DemoCounters.Snapshot quiet = counters.read();
      assertThat(counters.read().dialledBy(quiet)).isEqualTo("nobody");
    }
  }

  @Test
  void sumsTheSamplesWhoseLabelsMatch() {
    String text =
        """
        # HELP egress_tunnel_server_bytes_total Payload bytes relayed
        # TYPE egress_tunnel_server_bytes_total counter
        egress_tunnel_server_bytes_total{direction="to_client",route="agent"} 1.073741824E9
        egress_tunnel_server_bytes_total{direction="to_client",route="direct"} 12.0
        egress_tunnel_server_bytes_total{direction="to_target",route="agent"} 360.0
        egress_tunnel_server_bytes_total_extra{direction="to_client",route="agent"} 5.0
        egress_tunnel_server_agents_connected 2.0
        """;
    String bytes = "egress_tunnel_server_bytes_total";
    assertThat(DemoCounters.sum(text, bytes, Map.of("direction", "to_client", "route", "agent")))
        .isEqualTo(1L << 30);
    assertThat(DemoCounters.sum(text, bytes, Map.of("direction", "to_client")))
        .isEqualTo((1L << 30) + 12);
    assertThat(DemoCounters.sum(text, bytes, Map.of())).isEqualTo((1L << 30) + 12 + 360);
    assertThat(DemoCounters.sum(text, "egress_tunnel_server_agents_connected", Map.of()))
        .isEqualTo(2);
    assertThat(DemoCounters.sum(text, bytes, Map.of("route", "none"))).isZero();
  }

  private static void echoOnce(ServerSocket listener) {
    try (Socket s = listener.accept()) {
      s.getInputStream().transferTo(s.getOutputStream());
      s.shutdownOutput();
    } catch (IOException e) {
      // the test fails on the client side
    }
  }

  private static Socket connect(InetSocketAddress proxy, String target) throws IOException {
    Socket s = new Socket();
    s.connect(proxy, 5_000);
    s.setSoTimeout(15_000);
    OutputStream out = s.getOutputStream();
    out.write(
        ("CONNECT " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII));
    out.flush();
    return s;
  }

  private static String readHead(InputStream in) throws IOException {
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    while (!head.toString(StandardCharsets.US_ASCII).endsWith("\r\n\r\n")) {
      int b = in.read();
      if (b < 0) {
        break;
      }
      head.write(b);
    }
    return head.toString(StandardCharsets.US_ASCII);
  }

  private static String hostPort(InetSocketAddress a) {
    return a.getHostString() + ":" + a.getPort();
  }
}
