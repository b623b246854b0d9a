package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.routing.EgressMode;
import io.grpc.StatusRuntimeException;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;

/**
 * {@code --apiserver-protocol}: a server pinned to one protocol refuses a client of the other in
 * that client's own protocol, naming the setting to change, and still serves its own.
 */
class ApiserverProtocolPinTest {

  private static TunnelFixture pinned(ServerConfig.ApiserverProtocol p) throws Exception {
    return new TunnelFixture(
        ServerConfig.plain(
                EgressMode.DISABLED,
                new InetSocketAddress("127.0.0.1", 0),
                new InetSocketAddress("127.0.0.1", 0))
            .withApiserverProtocol(p));
  }

  @Test
  void pinnedToHttpConnectAGrpcCallIsUnimplementedAndConnectWorks() throws Exception {
    try (TunnelFixture fx = pinned(ServerConfig.ApiserverProtocol.HTTP_CONNECT);
        TestTarget echo = new TestTarget("127.0.0.1", 0, TestTarget::echo);
        KonnectivityClient grpc = KonnectivityClient.overTcp(fx.proxy())) {
      assertThatThrownBy(() -> grpc.dial("127.0.0.1:" + echo.port()))
          .isInstanceOf(ExecutionException.class)
          .cause()
          .isInstanceOf(StatusRuntimeException.class)
          .hasMessageContaining("UNIMPLEMENTED")
          .hasMessageContaining("serves HTTP CONNECT only (--apiserver-protocol http-connect)")
          .hasMessageContaining("proxyProtocol: HTTPConnect");
      ConnectClient.Answer ok = ConnectClient.connect(fx.proxy(), "127.0.0.1:" + echo.port());
      assertThat(ok.status()).isEqualTo(200);
      ok.socket().close();
    }
  }

  @Test
  void pinnedToGrpcAConnectIsRefusedWithTheReasonAndGrpcWorks() throws Exception {
    try (TunnelFixture fx = pinned(ServerConfig.ApiserverProtocol.GRPC);
        TestTarget echo = new TestTarget("127.0.0.1", 0, TestTarget::echo);
        KonnectivityClient grpc = KonnectivityClient.overTcp(fx.proxy())) {
      ConnectClient.Answer refused = ConnectClient.connect(fx.proxy(), "127.0.0.1:" + echo.port());
      assertThat(refused.status()).isEqualTo(403);
      assertThat(refused.body())
          .contains("serves GRPC only (--apiserver-protocol grpc)")
          .contains("proxyProtocol: GRPC");
      KonnectivityClient.Dialled d = grpc.dial("127.0.0.1:" + echo.port());
      assertThat(d.error()).isNull();
      d.conn().write("ping".getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, 4);
      assertThat(new String(d.conn().read(10), java.nio.charset.StandardCharsets.US_ASCII))
          .isEqualTo("ping");
      assertThat(d.conn().close()).isEmpty();
    }
  }
}
