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

  /**
   * The node's newest session stops answering (its agent reads nothing: no DIAL_RESULT, no pong): a
   * dial to it moves to the node's other live session after the probe's wait, long before the dial
   * timeout.
   */
  @Test
  void aDialToASilentSessionMovesToTheNodesOtherSession() throws Exception {
    Logger logger = (Logger) LoggerFactory.getLogger("io.egresstunnel.server.frontend.TunnelDial");
    ListAppender<ILoggingEvent> lines = new ListAppender<>();
    lines.start();
    logger.addAppender(lines);
    try (TunnelFixture fx =
            new TunnelFixture(EgressMode.POD, l -> l.withDialTimeout(Duration.ofMinutes(5)));
        TestTarget echo = new TestTarget("127.9.2.10", 0, TestTarget::echo)) {
      fx.startAgent(fx.agentConfig("node-s", "127.0.9.2", "127.9.2.0/24", EgressMode.POD));
      var live = fx.session("node-s");
      TunnelAgent silent =
          new TunnelAgent(fx.agentConfig("node-s", "127.0.9.2", "127.9.2.0/24", EgressMode.POD))
              .start();
      fx.agents.add(silent);
      await().atMost(Duration.ofSeconds(20)).until(() -> fx.session("node-s") != live);
      var newest = fx.session("node-s");
      // The agent hangs (its event loop is stuck): dials and pings go unanswered from now on.
      java.util.concurrent.CountDownLatch hang = new java.util.concurrent.CountDownLatch(1);
      silent
          .sessions()
          .get(0)
          .eventLoop()
          .execute(
              () -> {
                try {
                  hang.await(60, java.util.concurrent.TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                  Thread.currentThread().interrupt();
                }
              });
      try {

        ConnectClient.Answer a =
            ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
        assertThat(a.status()).isEqualTo(200);
        a.socket().getOutputStream().write(7);
        assertThat(a.socket().getInputStream().read()).isEqualTo(7);
        a.socket().close();
        assertThat(newest.streamsOpened()).isEqualTo(1); // tried first
        assertThat(live.streamsOpened()).isEqualTo(1); // and carried it
        assertThat(lines.list)
            .extracting(ILoggingEvent::getFormattedMessage)
            .anySatisfy(m -> assertThat(m).contains("answered neither a dial nor a ping"));
      } finally {
        hang.countDown();
      }
    } finally {
      logger.detachAppender(lines);
    }
  }
}
