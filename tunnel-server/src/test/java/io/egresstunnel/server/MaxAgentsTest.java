package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.routing.EgressMode;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** --max-agents: an agent beyond the limit gets 503 with a reason; the others are untouched. */
class MaxAgentsTest {
  @Test
  void anAgentBeyondTheLimitIsRefusedUntilASlotFrees() throws Exception {
    try (TunnelFixture fx = new TunnelFixture(EgressMode.AGENT, l -> l.withMaxAgents(1))) {
      TunnelAgent first =
          fx.startAgent(fx.agentConfig("node-1", "127.0.10.1", "127.10.1.0/24", EgressMode.AGENT));
      assertThat(AgentAuthenticationTest.upgrade(fx.server, null, "node-2"))
          .startsWith("HTTP/1.1 503")
          .contains("maximum of 1 agents (--max-agents)");
      assertThat(fx.server.registry().agentCount()).isEqualTo(1);
      assertThat(fx.session("node-1").isEstablished()).isTrue();

      first.close();
      await().atMost(Duration.ofSeconds(20)).until(() -> fx.server.registry().agentCount() == 0);
      fx.startAgent(fx.agentConfig("node-2", "127.0.10.2", "127.10.2.0/24", EgressMode.AGENT));
      assertThat(fx.server.registry().agentCount()).isEqualTo(1);
    }
  }
}
