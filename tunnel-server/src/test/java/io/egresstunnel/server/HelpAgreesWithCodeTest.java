package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.admin.AdminEndpoints;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/**
 * What {@code tunnel-server --help} and the protocol document say agrees with what the server does:
 * the admin listener's paths, the config file's example key, and the keepalive defaults.
 */
class HelpAgreesWithCodeTest {

  private static String description(CommandLine cl, String option) {
    return String.join(" ", cl.getCommandSpec().findOption(option).description());
  }

  @Test
  void adminListenHelpNamesEveryPathTheAdminListenerServes() throws Exception {
    String help = description(TunnelServerMain.commandLine(), "--admin-listen");
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
    CommandLine cl = TunnelServerMain.commandLine();
    Matcher m = Pattern.compile("\\(([a-z-]+): [^)]+\\)").matcher(description(cl, "--config"));
    assertThat(m.find()).isTrue();
    assertThat(cl.getCommandSpec().findOption("--" + m.group(1))).isNotNull();
  }

  @Test
  void theProtocolDocumentGivesTheKeepaliveDefaultsOfTheCommandLine() throws Exception {
    String protocol =
        Files.readString(Path.of("..", "docs", "protocol.md")).replaceAll("\\s+", " ");
    CommandLine cl = TunnelServerMain.commandLine();
    for (String[] flag :
        new String[][] {{"--ping-interval", "ping interval"}, {"--ping-timeout", "ping timeout"}}) {
      OptionSpec option = cl.getCommandSpec().findOption(flag[0]);
      Matcher m = Pattern.compile("\\*" + flag[1] + "\\* \\(default (\\d+) s\\)").matcher(protocol);
      assertThat(m.find()).as(flag[1] + " in docs/protocol.md").isTrue();
      assertThat(m.group(1) + "s").as(flag[0]).isEqualTo(option.defaultValue());
    }
  }
}
