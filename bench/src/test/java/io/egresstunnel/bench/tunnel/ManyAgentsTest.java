package io.egresstunnel.bench.tunnel;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.ServerConfig;
import io.egresstunnel.server.TunnelServer;
import java.net.InetSocketAddress;
import java.net.URI;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * The short run of the many-agents harness, in CI: 500 agents connecting at once to one server,
 * held while 500 checksummed echoes run through agents picked at random (the long run, 1000 agents
 * for 2 minutes, is in docs/reliability.md).
 */
class ManyAgentsTest {

  @Test
  void fiveHundredAgentsAtOnceAndEveryEchoIntact() throws Exception {
    try (TunnelServer server =
        new TunnelServer(
                ServerConfig.plain(
                    EgressMode.POD,
                    new InetSocketAddress("127.0.0.1", 0),
                    new InetSocketAddress("127.0.0.1", 0)))
            .start()) {
      ManyAgents.Result r =
          ManyAgents.run(
              URI.create("ws://127.0.0.1:" + server.agentAddress().getPort()),
              server.connectAddress(),
              500,
              Duration.ofSeconds(2),
              500,
              16 * 1024);
      assertThat(r.established()).as(r.toString()).isEqualTo(500);
      assertThat(r.droppedWhileHeld()).as(r.toString()).isZero();
      assertThat(r.echoesIntact()).as(r.toString()).isEqualTo(500);
      assertThat(r.bytesLost()).as(r.toString()).isZero();
    }
  }
}
