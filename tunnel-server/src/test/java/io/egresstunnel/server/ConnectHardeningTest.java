package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.routing.EgressMode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Bad CONNECT clients get a clear error each and cost nobody else anything. */
class ConnectHardeningTest {

  @Test
  void aRequestDribbledOneByteAtATimeIsClosedAtTheReadTimeout() throws Exception {
    try (TunnelFixture fx =
        new TunnelFixture(
            EgressMode.DISABLED, l -> l.withConnectReadTimeout(Duration.ofMillis(600)))) {
      try (Socket s = new Socket()) {
        s.connect(fx.proxy(), 5_000);
        s.setSoTimeout(20_000);
        OutputStream out = s.getOutputStream();
        byte[] request = ConnectClient.apiserverRequest("127.0.0.1:9");
        ByteArrayOutputStream answer = new ByteArrayOutputStream();
        InputStream in = s.getInputStream();
        int sent = 0;
        try {
          for (; sent < request.length; sent++) {
            out.write(request[sent]);
            out.flush();
            TimeUnit.MILLISECONDS.sleep(200); // a slowloris client, by construction
            if (in.available() > 0) {
              break;
            }
          }
        } catch (IOException closed) {
          // the server may close while we still write
        }
        in.transferTo(answer);
        assertThat(sent)
            .as("the server gave up long before the request was complete")
            .isLessThan(request.length);
        assertThat(answer.toString(StandardCharsets.UTF_8))
            .startsWith("HTTP/1.1 408")
            .contains("not complete within 600 ms");
      }
    }
  }

  @Test
  void tenThousandMalformedRequestsEachGetAnErrorWhileATransferStaysIntact() throws Exception {
    // Through the direct path (Splice): this load once exposed the epoll transport losing the
    // tail of the transfer (see Transport).
    try (TunnelFixture fx = new TunnelFixture(EgressMode.DISABLED);
        TestTarget echo = new TestTarget("127.3.1.10", 0, TestTarget::echo)) {
      ConnectClient.Answer bulk =
          ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
      assertThat(bulk.status()).isEqualTo(200);
      CompletableFuture<Transfers.Result> transfer =
          CompletableFuture.supplyAsync(
              () -> {
                try (Socket s = bulk.socket()) {
                  return Transfers.echo(s, 64L << 20, 8);
                } catch (Exception e) {
                  throw new IllegalStateException(e);
                }
              });
      String[] bad = {
        "GARBAGE\r\n\r\n",
        "CONNECT nowhere HTTP/1.1\r\n\r\n",
        "CONNECT host:0 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT [zz]:1 HTTP/1.1\r\n\r\n"
      };
      int[] expected = {400, 400, 400, 405, 400};
      for (int i = 0; i < 10_000; i++) {
        ConnectClient.Answer a =
            ConnectClient.send(fx.proxy(), bad[i % bad.length].getBytes(StandardCharsets.US_ASCII));
        assertThat(a.status()).as(bad[i % bad.length]).isEqualTo(expected[i % bad.length]);
        assertThat(a.body()).isNotBlank();
      }
      Transfers.Result r = transfer.get(120, TimeUnit.SECONDS);
      assertThat(r.received()).isEqualTo(64L << 20);
      assertThat(r.receivedSha()).isEqualTo(r.sentSha());
    }
  }
}
