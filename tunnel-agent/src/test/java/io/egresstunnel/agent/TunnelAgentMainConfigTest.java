package io.egresstunnel.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.proto.config.Logging;
import io.egresstunnel.routing.EgressMode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** tunnel-agent's flags from the command line, the environment and a config file. */
class TunnelAgentMainConfigTest {
  static final String P = TunnelAgentMain.ENV_PREFIX;

  @TempDir Path dir;

  private Path file(String yaml) throws IOException {
    Path f = dir.resolve("agent.yaml");
    Files.writeString(f, yaml);
    return f;
  }

  private static TunnelAgentMain parse(Map<String, String> env, String... args) {
    TunnelAgentMain main = new TunnelAgentMain();
    TunnelAgentMain.commandLine(main, env).parseArgs(args);
    return main;
  }

  @Test
  void fileEnvironmentAndFlagsAgree() throws IOException {
    TunnelAgentMain byFlags =
        parse(
            Map.of(),
            "--server",
            "ws://10.0.0.1:8091",
            "--server",
            "wss://s2.example:443",
            "--node-name",
            "worker-1",
            "--node-ip",
            "127.0.0.2,fd00::2",
            "--pod-cidr",
            "10.42.1.0/24",
            "--allow",
            "10.0.0.0/8:443",
            "--mode",
            "cluster",
            "--websocket-masking",
            "never",
            "--kubelet-port",
            "10251",
            "--dial-timeout",
            "3s",
            "--default-route",
            "--serve-cidr",
            "192.168.50.0/24,fd00:50::/64",
            "--serve-host",
            "db.site",
            "--log-level",
            "warn");
    TunnelAgentMain byEnv =
        parse(
            Map.ofEntries(
                Map.entry(P + "SERVER", "ws://10.0.0.1:8091,wss://s2.example:443"),
                Map.entry(P + "NODE_NAME", "worker-1"),
                Map.entry(P + "NODE_IP", "127.0.0.2,fd00::2"),
                Map.entry(P + "POD_CIDR", "10.42.1.0/24"),
                Map.entry(P + "ALLOW", "10.0.0.0/8:443"),
                Map.entry(P + "MODE", "cluster"),
                Map.entry(P + "WEBSOCKET_MASKING", "NEVER"),
                Map.entry(P + "KUBELET_PORT", "10251"),
                Map.entry(P + "DIAL_TIMEOUT", "3s"),
                Map.entry(P + "DEFAULT_ROUTE", "true"),
                Map.entry(P + "SERVE_CIDR", "192.168.50.0/24,fd00:50::/64"),
                Map.entry(P + "SERVE_HOST", "db.site"),
                Map.entry(P + "LOG_LEVEL", "warn")));
    Path f =
        file(
            """
            server:
              - ws://10.0.0.1:8091
              - wss://s2.example:443
            node-name: worker-1
            node-ip: [127.0.0.2, "fd00::2"]
            pod-cidr: 10.42.1.0/24
            allow: 10.0.0.0/8:443
            mode: cluster
            websocket-masking: never
            kubelet-port: 10251
            dial-timeout: 3s
            default-route: true
            serve-cidr: [192.168.50.0/24, "fd00:50::/64"]
            serve-host: db.site
            log-level: warn
            """);
    TunnelAgentMain byFile = parse(Map.of(), "--config", f.toString());

    AgentConfig expected = byFlags.toConfig();
    assertThat(expected.servers())
        .containsExactly(URI.create("ws://10.0.0.1:8091"), URI.create("wss://s2.example:443"));
    assertThat(expected.nodeAddresses()).hasSize(2);
    assertThat(expected.mode()).isEqualTo(EgressMode.CLUSTER);
    assertThat(expected.masking()).isEqualTo(AgentConfig.Masking.NEVER);
    assertThat(expected.egress().defaultRoute()).isTrue();
    assertThat(expected.egress().serveCidrs()).hasSize(2);
    assertThat(expected.egress().serveHosts()).containsExactly("db.site");
    for (TunnelAgentMain other : new TunnelAgentMain[] {byEnv, byFile}) {
      assertThat(other.toConfig()).usingRecursiveComparison().isEqualTo(expected);
      assertThat(other.common.logLevel).isEqualTo(Logging.Level.WARN);
      assertThat(other.sources.warnings()).isEmpty();
    }
  }

  @Test
  void requiredFlagsMayComeFromTheFileOrTheEnvironment() throws IOException {
    Path f = file("server: ws://s:8091\n");
    TunnelAgentMain main = parse(Map.of(P + "NODE_NAME", "n1"), "--config", f.toString());
    assertThat(main.toConfig().nodeName()).isEqualTo("n1");
    StringWriter err = new StringWriter();
    CommandLine cl = TunnelAgentMain.commandLine(new TunnelAgentMain(), Map.of());
    cl.setErr(new PrintWriter(err, true));
    assertThat(cl.execute("--config", f.toString())).isNotZero();
    assertThat(err.toString()).contains("--node-name");
  }

  @Test
  void conflictsNameBothSources() throws IOException {
    Path f = file("node-name: from-file\nserver: [ws://a:1]\n");
    TunnelAgentMain main =
        parse(
            Map.of(P + "SERVER", "ws://a:1", P + "NODE_NAME", "from-env", P + "NODE_IPS", "x"),
            "--config",
            f.toString(),
            "--node-name",
            "from-flag");
    assertThat(main.toConfig().nodeName()).isEqualTo("from-flag");
    assertThat(main.sources.warnings())
        .containsExactly(
            "--node-name=from-flag from the command line overrides "
                + P
                + "NODE_NAME=from-env from the environment",
            "--node-name=from-flag from the command line overrides node-name: from-file from " + f,
            "environment variable "
                + P
                + "NODE_IPS sets nothing: no flag of tunnel-agent is called that; did you mean '"
                + P
                + "NODE_IP'?; ignored");
  }

  @Test
  void badValuesNameTheirSource() throws IOException {
    Path f = file("server: ws://s:1\nnode-name: n\nwebsocket-masking: sometimes\n");
    assertThatThrownBy(() -> parse(Map.of(), "--config", f.toString()))
        .hasMessage(
            "config file "
                + f
                + ", line 3: websocket-masking: 'sometimes' is not one of auto, always, never");
    assertThatThrownBy(() -> parse(Map.of(P + "KUBELET_PORT", "ten"), "--config", f.toString()))
        .hasMessage("environment variable " + P + "KUBELET_PORT: 'ten' is not a whole number");
  }

  @Test
  void helpNamesTheEnvironmentPrefixAndTheConfigFile() {
    StringWriter out = new StringWriter();
    CommandLine cl = TunnelAgentMain.commandLine(new TunnelAgentMain(), Map.of());
    cl.setOut(new PrintWriter(out, true));
    assertThat(cl.execute("--help")).isZero();
    assertThat(out.toString())
        .contains("--config=FILE", "--log-level", "--log-format")
        .contains(P + "<FLAG>", P + "CONFIG", "docs/configuration.md");
  }
}
