package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.admin.AdminEndpoints;
import io.egresstunnel.testing.HelpChecks;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What {@code tunnel-server --help} and the protocol document say agrees with what the server does:
 * the admin listener's paths, the config file's example key, and the keepalive defaults.
 */
class HelpAgreesWithCodeTest {

  @Test
  void adminListenHelpNamesEveryPathTheAdminListenerServes() throws Exception {
    String help = HelpChecks.description(TunnelServerMain.commandLine(), "--admin-listen");
    try (TunnelServer server =
        new TunnelServer(
                ServerConfig.plain(
                        EgressMode.AGENT,
                        new InetSocketAddress("127.0.0.1", 0),
                        new InetSocketAddress("127.0.0.1", 0))
                    .withAdminListen(new InetSocketAddress("127.0.0.1", 0)))
            .start()) {
      List<String> paths = new ArrayList<>(AdminEndpoints.of(server).keySet());
      paths.add("/metrics");
      HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
      InetSocketAddress admin = server.adminAddress();
      for (String path : paths) {
        assertThat(help).as("--admin-listen help").contains(path);
        HttpResponse<String> r =
            http.send(
                HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + admin.getPort() + path + "?target=x:1"))
                    .timeout(Duration.ofSeconds(10))
                    .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(path).isNotEqualTo(404);
      }
    }
  }

  @Test
  void theConfigFileExampleKeyIsAFlagOfTheServer() {
    HelpChecks.configExampleKeyIsAFlag(TunnelServerMain.commandLine());
  }

  @Test
  void theProtocolDocumentGivesTheKeepaliveDefaultsOfTheCommandLine() throws Exception {
    HelpChecks.protocolDocumentGivesTheKeepaliveDefaults(TunnelServerMain.commandLine());
  }
}
