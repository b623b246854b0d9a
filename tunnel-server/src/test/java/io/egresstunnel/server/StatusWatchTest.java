package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.admin.ServerStatus;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * {@code tunnel-server status --watch}: successive snapshots with bytes per second, addresses
 * without InetAddress's leading slash, and Ctrl-C ending it with exit status 0.
 */
class StatusWatchTest {
  private static TunnelFixture fixture() throws Exception {
    return new TunnelFixture(
        ServerConfig.plain(
                EgressMode.AGENT,
                new InetSocketAddress("127.0.0.1", 0),
                new InetSocketAddress("127.0.0.1", 0))
            .withAdminListen(new InetSocketAddress("127.0.0.1", 0)));
  }

  private static String admin(TunnelFixture fx) {
    return "127.0.0.1:" + fx.server.adminAddress().getPort();
  }

  @Test
  void watchPrintsSnapshotsSeparatedByABlankLineWithRatesAndBareAddresses() throws Exception {
    try (TunnelFixture fx = fixture()) {
      fx.startAgent(fx.agentConfig("node-w", "127.0.14.1", null, EgressMode.AGENT));
      StringWriter out = new StringWriter();
      var cl = TunnelServerMain.commandLine();
      cl.setOut(new PrintWriter(out));
      assertThat(
              cl.execute(
                  "status", "--watch", "--interval", "20ms", "--count", "3", "--admin", admin(fx)))
          .isZero();
      String text = out.toString();
      assertThat(text).doesNotContain("\033[");
      String[] frames = text.split("\n\n(?=every )");
      assertThat(frames).hasSize(3);
      assertThat(frames[0])
          .startsWith("every 20ms, ")
          .contains("1 agent(s)\n")
          .doesNotContain("OUT/S");
      for (String frame : List.of(frames[1], frames[2])) {
        assertThat(frame)
            .contains("1 agent(s), 0 stream(s) through them, total 0B/s out, 0B/s in")
            .contains("OUT/S")
            .contains("IN/S");
      }
      String row = frames[2].lines().filter(l -> l.startsWith("node-w")).findFirst().orElseThrow();
      assertThat(row).contains(" 127.0.0.1:").doesNotContain("/127.0.0.1");

      String json =
          HttpClient.newHttpClient()
              .send(
                  HttpRequest.newBuilder(URI.create("http://" + admin(fx) + "/status")).build(),
                  HttpResponse.BodyHandlers.ofString())
              .body();
      assertThat(json).containsPattern("\"address\" : \"127\\.0\\.0\\.1:\\d+\"");
    }
  }

  @Test
  void ratesAreTheChangeOfEachAgentsByteCountersBetweenTwoPolls() {
    String since = Instant.now().minusSeconds(60).toString();
    ServerStatus.Agent a0 =
        new ServerStatus.Agent(
            "node-a",
            "/10.0.0.1:4000",
            since,
            1,
            3,
            1000,
            5000,
            10,
            false,
            "",
            List.of(),
            10250,
            null);
    ServerStatus.Agent b0 =
        new ServerStatus.Agent(
            "node-b", "10.0.0.2:4000", since, 0, 0, 0, 0, 10, false, "", List.of(), 10250, null);
    ServerStatus.Agent a1 =
        new ServerStatus.Agent(
            "node-a",
            "/10.0.0.1:4000",
            since,
            1,
            3,
            1000 + (4 << 20),
            5000 + 1000,
            10,
            false,
            "",
            List.of(),
            10250,
            null);
    // node-b reconnected between the polls: a new session, no rate yet
    ServerStatus.Agent b1 =
        new ServerStatus.Agent(
            "node-b",
            "10.0.0.2:4001",
            Instant.now().toString(),
            0,
            0,
            0,
            0,
            10,
            false,
            "",
            List.of(),
            10250,
            null);
    ServerStatus.Report before =
        new ServerStatus.Report("s1", "agent", true, false, List.of(a0, b0), List.of());
    ServerStatus.Report after =
        new ServerStatus.Report("s1", "agent", true, false, List.of(a1, b1), List.of());

    String table = ServerStatus.toTable(after, before, TimeUnit.SECONDS.toNanos(2));

    assertThat(table)
        .contains("2 agent(s), 1 stream(s) through them, total 2048KiB/s out, 500B/s in");
    List<String> rows = new ArrayList<>(table.lines().toList());
    String header = rows.stream().filter(l -> l.startsWith("NODE")).findFirst().orElseThrow();
    int outCol = header.indexOf("OUT/S");
    int inCol = header.indexOf("IN/S");
    String a = rows.stream().filter(l -> l.startsWith("node-a")).findFirst().orElseThrow();
    String b = rows.stream().filter(l -> l.startsWith("node-b")).findFirst().orElseThrow();
    assertThat(a.substring(outCol)).startsWith("2048KiB/s");
    assertThat(a.substring(inCol)).startsWith("500B/s");
    assertThat(a).contains("10.0.0.1:4000").doesNotContain("/10.0.0.1");
    assertThat(b.substring(outCol)).startsWith("-");
    assertThat(ServerStatus.toTable(after)).doesNotContain("OUT/S");
  }

  @Test
  void ctrlCEndsTheWatchWithExitStatusZero() throws Exception {
    try (TunnelFixture fx = fixture()) {
      List<String> cmd = new ArrayList<>();
      cmd.add(ProcessHandle.current().info().command().orElse("java"));
      cmd.add("-cp");
      cmd.add(System.getProperty("java.class.path"));
      cmd.add(TunnelServerMain.class.getName());
      cmd.addAll(List.of("status", "--watch", "--interval", "100ms", "--admin", admin(fx)));
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      try {
        BufferedReader lines =
            new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        int agentLines = 0;
        for (String line; agentLines < 2 && (line = lines.readLine()) != null; ) {
          if (line.startsWith("0 agent(s)")) {
            agentLines++; // the second frame: the loop is waiting between polls or polling
          }
        }
        assertThat(agentLines).isEqualTo(2);
        Process kill = new ProcessBuilder("kill", "-INT", Long.toString(p.pid())).start();
        assertThat(kill.waitFor(10, TimeUnit.SECONDS)).isTrue();
        assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).isZero();
      } finally {
        p.destroyForcibly();
      }
    }
  }
}
