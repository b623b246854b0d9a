package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.proto.net.SlicingWebSocketFrameDecoder;
import io.egresstunnel.routing.EgressMode;
import java.net.Socket;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The opt-in zero-copy websocket decoder (-Degress.websocket.decoder=slicing) on both ends of a
 * real session: it is the one installed, and a transfer each way arrives intact.
 */
class SlicingDecoderEndToEndTest {
  @BeforeEach
  void optIn() {
    System.setProperty("egress.websocket.decoder", "slicing");
  }

  @AfterEach
  void optOut() {
    System.clearProperty("egress.websocket.decoder");
  }

  @Test
  void bothEndsDecodeWithSlicesAndCarryDataIntact() throws Exception {
    try (TunnelFixture fx = new TunnelFixture(EgressMode.POD);
        TestTarget echo = new TestTarget("127.13.1.10", 0, TestTarget::echo)) {
      fx.startAgent(fx.agentConfig("node-s", "127.0.13.1", "127.13.1.0/24", EgressMode.POD));
      assertThat(fx.session("node-s").channel().pipeline().get(SlicingWebSocketFrameDecoder.class))
          .as("server side")
          .isNotNull();
      ConnectClient.Answer answer =
          ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
      assertThat(answer.status()).isEqualTo(200);
      try (Socket s = answer.socket()) {
        Transfers.Result r = Transfers.echo(s, 64L << 20, 11);
        assertThat(r.receivedSha()).isEqualTo(r.sentSha());
        assertThat(r.received()).isEqualTo(64L << 20);
      }
      assertThat(
              fx.agents
                  .get(0)
                  .sessions()
                  .get(0)
                  .channel()
                  .pipeline()
                  .get(SlicingWebSocketFrameDecoder.class))
          .as("agent side")
          .isNotNull();
    }
  }
}
