package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.routing.EgressMode;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * Quiet sessions and streams live on: pings and pongs count as signs of life on both ends, so
 * nothing is closed at the ping timeout while the peer answers. Real sockets on both sides, with
 * short ping settings so that several timeouts pass within the test.
 */
class KeepaliveTest {
  private static final Duration PING_INTERVAL = Duration.ofMillis(150);
  private static final Duration PING_TIMEOUT = Duration.ofMillis(500);

  /** Three ping timeouts and a little more. */
  private static final Duration QUIET = PING_TIMEOUT.multipliedBy(3).plusMillis(300);

  @Test
  void aQuietSessionAndStreamOutliveThreePingTimeouts() throws Exception {
    try (TunnelFixture fx =
            new TunnelFixture(EgressMode.AGENT, l -> l.withPing(PING_INTERVAL, PING_TIMEOUT));
        TestTarget echo = new TestTarget("127.0.4.1", 0, TestTarget::echo)) {
      AgentConfig config = fx.agentConfig("node-quiet", "127.0.4.1", null, EgressMode.AGENT);
      fx.startAgent(
          config
              .withKubeletPort(echo.port())
              .withLimits(config.limits().withPing(PING_INTERVAL, PING_TIMEOUT)));
      TunnelSession session = fx.session("node-quiet");

      ConnectClient.Answer open =
          ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
      assertThat(open.status()).isEqualTo(200);
      Socket client = open.socket();
      client.setSoTimeout((int) Duration.ofSeconds(10).toMillis());
      assertThat(roundTrip(client, "hello")).isEqualTo("hello");

      // Nothing but keepalive on the websocket for three ping timeouts: the session, its stream
      // and the agent's tunnel must all still be the same ones afterwards.
      await().during(QUIET).atMost(QUIET.plusSeconds(5)).until(() -> session.channel().isActive());
      assertThat(fx.session("node-quiet")).isSameAs(session);
      assertThat(fx.streams("node-quiet")).hasSize(1);

      assertThat(roundTrip(client, "still there")).isEqualTo("still there");
      client.shutdownOutput();
      assertThat(client.getInputStream().read()).isEqualTo(-1);
      client.close();
      assertThat(fx.session("node-quiet")).isSameAs(session);
    }
  }

  /** The same for a GRPC call (over TCP, so that both transports run it). */
  @Test
  void aQuietGrpcCallOutlivesThreePingTimeouts() throws Exception {
    try (TunnelFixture fx =
            new TunnelFixture(EgressMode.AGENT, l -> l.withPing(PING_INTERVAL, PING_TIMEOUT));
        TestTarget echo = new TestTarget("127.0.4.2", 0, TestTarget::echo);
        KonnectivityClient client = KonnectivityClient.overTcp(fx.proxy())) {
      AgentConfig config = fx.agentConfig("node-quiet-grpc", "127.0.4.2", null, EgressMode.AGENT);
      fx.startAgent(
          config
              .withKubeletPort(echo.port())
              .withLimits(config.limits().withPing(PING_INTERVAL, PING_TIMEOUT)));
      TunnelSession session = fx.session("node-quiet-grpc");
      KonnectivityClient.Conn call = client.dial(echo.address() + ":" + echo.port()).conn();
      call.write("hello".getBytes(StandardCharsets.UTF_8), 0, 5);
      assertThat(new String(call.read(10), StandardCharsets.UTF_8)).isEqualTo("hello");

      await().during(QUIET).atMost(QUIET.plusSeconds(5)).until(() -> session.channel().isActive());
      assertThat(fx.session("node-quiet-grpc")).isSameAs(session);
      assertThat(fx.streams("node-quiet-grpc")).hasSize(1);

      call.write("still there".getBytes(StandardCharsets.UTF_8), 0, 11);
      assertThat(new String(call.read(10), StandardCharsets.UTF_8)).isEqualTo("still there");
      assertThat(call.close()).isEmpty();
    }
  }

  private static String roundTrip(Socket client, String message) throws Exception {
    OutputStream out = client.getOutputStream();
    byte[] bytes = message.getBytes(StandardCharsets.UTF_8);
    out.write(bytes);
    out.flush();
    InputStream in = client.getInputStream();
    byte[] back = in.readNBytes(bytes.length);
    return new String(back, StandardCharsets.UTF_8);
  }
}
