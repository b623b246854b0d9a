package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.routing.EgressMode;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Operations on a running server: /readyz and its verbose form through the server's life (no agent
 * → agent → drain), /status and the status command, and a graceful drain that lets an in-flight 100
 * MiB transfer finish while new CONNECTs and agents are turned away.
 */
class DrainAndStatusTest {
  private static final HttpClient HTTP = HttpClient.newHttpClient();

  private static TunnelFixture fixture() throws Exception {
    return new TunnelFixture(
        ServerConfig.plain(
                EgressMode.POD,
                new InetSocketAddress("127.0.0.1", 0),
                new InetSocketAddress("127.0.0.1", 0))
            .withAdminListen(new InetSocketAddress("127.0.0.1", 0))
            .withLimits(ServerConfig.Limits.defaults().withDrain(Duration.ofSeconds(60), 1)));
  }

  private static HttpResponse<String> get(TunnelFixture fx, String path) throws Exception {
    URI uri = URI.create("http://127.0.0.1:" + fx.server.adminAddress().getPort() + path);
    return HTTP.send(HttpRequest.newBuilder(uri).build(), HttpResponse.BodyHandlers.ofString());
  }

  @Test
  void readinessFollowsAgentsAndDrainAndSaysWhy() throws Exception {
    try (TunnelFixture fx = fixture()) {
      assertThat(get(fx, "/readyz").statusCode()).isEqualTo(503);
      assertThat(get(fx, "/readyz?verbose").body())
          .contains("[+] listeners ok")
          .contains("[-] agents failed: 0 connected, 1 needed")
          .contains("readyz check failed");
      assertThat(get(fx, "/healthz").statusCode()).isEqualTo(200);

      fx.startAgent(fx.agentConfig("node-r", "127.0.12.1", "127.12.1.0/24", EgressMode.POD));
      await().atMost(Duration.ofSeconds(10)).until(() -> get(fx, "/readyz").statusCode() == 200);
      assertThat(get(fx, "/readyz?verbose").body())
          .contains("[+] agents ok: 1 connected, 1 needed")
          .contains("readyz check passed");

      fx.server.drain(Duration.ofSeconds(10)); // nothing open: returns at once
      assertThat(get(fx, "/readyz").statusCode()).isEqualTo(503);
      assertThat(get(fx, "/readyz?verbose").body()).contains("[-] not-draining failed");
      assertThat(get(fx, "/healthz").statusCode()).isEqualTo(200);
    }
  }

  @Test
  void drainLetsAnInFlightTransferFinishWhileNewWorkIsRefused() throws Exception {
    try (TunnelFixture fx = fixture();
        TestTarget echo = new TestTarget("127.12.2.10", 0, TestTarget::echo)) {
      fx.startAgent(fx.agentConfig("node-d", "127.0.12.2", "127.12.2.0/24", EgressMode.POD));
      String target = echo.address() + ":" + echo.port();
      ConnectClient.Answer answer = ConnectClient.connect(fx.proxy(), target);
      assertThat(answer.status()).isEqualTo(200);
      Socket s = answer.socket();
      long total = 100L << 20;
      MessageDigest sent = Transfers.sha256();
      MessageDigest received = Transfers.sha256();
      CompletableFuture<Long> reader =
          CompletableFuture.supplyAsync(
              () -> {
                try (InputStream in = s.getInputStream()) {
                  return Transfers.readAll(in, received);
                } catch (Exception e) {
                  throw new IllegalStateException(e);
                }
              });
      OutputStream out = s.getOutputStream();
      Random random = new Random(7);
      byte[] chunk = new byte[1 << 20];
      long written = 0;
      // The first 8 MiB, then the stream shows on /status, then the drain starts.
      for (; written < 8L << 20; written += chunk.length) {
        random.nextBytes(chunk);
        sent.update(chunk);
        out.write(chunk);
      }
      await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> get(fx, "/status").body().contains("\"target\" : \"" + target + "\""));
      String json = get(fx, "/status").body();
      assertThat(json).contains("\"node\" : \"node-d\"").contains("\"state\" : \"open\"");

      StringWriter table = new StringWriter();
      var cl = TunnelServerMain.commandLine();
      cl.setOut(new PrintWriter(table));
      assertThat(cl.execute("status", "--admin", "127.0.0.1:" + fx.server.adminAddress().getPort()))
          .isZero();
      assertThat(table.toString())
          .contains("1 agent(s)")
          .contains("node-d")
          .contains("1 open stream(s)")
          .contains(target);

      CompletableFuture<Void> drain =
          CompletableFuture.runAsync(
              () -> {
                try {
                  fx.server.drain(Duration.ofSeconds(60));
                } catch (InterruptedException e) {
                  Thread.currentThread().interrupt();
                }
              });
      await().atMost(Duration.ofSeconds(10)).until(fx.server::isDraining);
      ConnectClient.Answer refused = ConnectClient.connect(fx.proxy(), target);
      assertThat(refused.status()).isEqualTo(503);
      assertThat(refused.body()).contains("shutting down");
      assertThat(AgentAuthenticationTest.upgrade(fx.server, null, "node-new"))
          .startsWith("HTTP/1.1 503")
          .contains("shutting down");
      assertThat(drain).isNotDone();

      for (; written < total; written += chunk.length) {
        random.nextBytes(chunk);
        sent.update(chunk);
        out.write(chunk);
      }
      s.shutdownOutput();
      assertThat(reader.get()).isEqualTo(total);
      assertThat(Transfers.hex(received)).isEqualTo(Transfers.hex(sent));
      s.close();
      drain.get();
      // The drained session closes; the agent keeps trying and is turned away meanwhile.
      await().atMost(Duration.ofSeconds(10)).until(() -> fx.server.registry().agentCount() == 0);
    }
  }
}
