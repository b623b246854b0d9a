package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.agents.AgentRegistry;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/** A second live session for one node takes its new streams, and the server says so. */
class SecondSessionTest {

  @Test
  void aSecondLiveSessionForANodeIsLoggedAsATakeover() throws Exception {
    Logger logger = (Logger) LoggerFactory.getLogger(AgentRegistry.class);
    ListAppender<ILoggingEvent> lines = new ListAppender<>();
    lines.start();
    logger.addAppender(lines);
    try (TunnelFixture fx = new TunnelFixture(EgressMode.POD);
        TestTarget echo = new TestTarget("127.9.1.10", 0, TestTarget::echo)) {
      TunnelAgent first =
          fx.startAgent(fx.agentConfig("node-t", "127.0.9.1", "127.9.1.0/24", EgressMode.POD));
      var firstSession = fx.session("node-t");
      fx.agents.add( // closed with the fixture
          new TunnelAgent(fx.agentConfig("node-t", "127.0.9.1", "127.9.1.0/24", EgressMode.POD))
              .start());
      await().atMost(Duration.ofSeconds(20)).until(() -> fx.session("node-t") != firstSession);
      assertThat(lines.list)
          .filteredOn(e -> e.getLevel() == ch.qos.logback.classic.Level.WARN)
          .extracting(ILoggingEvent::getFormattedMessage)
          .anySatisfy(
              m ->
                  assertThat(m)
                      .startsWith("node node-t: the new session from")
                      .endsWith(
                          "keeps its open streams and is still live: two agents for one node?"));
      // New streams go through the new session.
      ConnectClient.Answer a =
          ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
      assertThat(a.status()).isEqualTo(200);
      a.socket().close();
      assertThat(fx.session("node-t").streamsOpened()).isEqualTo(1);
      assertThat(firstSession.streamsOpened()).isZero();
      first.close();
    } finally {
      logger.detachAppender(lines);
    }
  }
}
