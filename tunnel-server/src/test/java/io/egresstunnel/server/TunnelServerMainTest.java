package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.routing.EgressMode;
import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class TunnelServerMainTest {

  @Test
  void helpExplainsEveryFlag() {
    StringWriter out = new StringWriter();
    CommandLine cl = TunnelServerMain.commandLine();
    cl.setOut(new PrintWriter(out));
    assertThat(cl.execute("--help")).isZero();
    for (String flag :
        new String[] {
          "--mode",
          "--connect-listen",
          "--uds",
          "--agent-listen",
          "--admin-listen",
          "--tls-cert",
          "--tls-key",
          "--client-ca",
          "--agent-tls-cert",
          "--agent-tls-key",
          "--server-id",
          "--server-count",
          "--initial-window",
          "--max-frame-payload",
          "--max-streams-per-agent",
          "--max-pending-dials-per-agent",
          "--dial-timeout",
          "--max-header-bytes",
          "--handshake-timeout",
          "--ping-interval",
          "--ping-timeout",
          "--listen-backlog",
          "--threads",
          "--kubeconfig",
          "--in-cluster",
          "--node-name",
          "--uds-group",
          "--tls-min-version",
          "--tls-cipher-suites",
          "--tls-reload-interval",
          "--agent-token-file",
          "--agent-client-ca",
          "--authentication-audience",
          "--agent-namespace",
          "--agent-service-account",
          "--authentication-cache-ttl",
          "--max-agents",
          "--client-allowed-names",
          "--connect-read-timeout",
          "certs",
          "status",
          "doctor"
        }) {
      assertThat(out.toString()).contains(flag);
    }
    assertThat(out.toString()).contains("127.0.0.1:8090").contains("0.0.0.0:8091");
    // The default server id differs between servers on one host.
    assertThat(out.toString()).contains("myhost-8091");
  }

  @Test
  void defaultsMatchTheDocumentation() throws Exception {
    TunnelServerMain main = new TunnelServerMain();
    TunnelServerMain.commandLine(main).parseArgs("--server-id", "s1");
    ServerConfig c = main.toConfig();
    assertThat(c.mode()).isEqualTo(EgressMode.AGENT);
    assertThat(c.connectListen().getPort()).isEqualTo(8090);
    assertThat(c.agentListen().getPort()).isEqualTo(8091);
    assertThat(c.adminListen().getPort()).isEqualTo(8092);
    assertThat(c.limits().initialWindow()).isEqualTo(512 * 1024);
    assertThat(c.limits().maxFramePayload()).isEqualTo(256 * 1024);
    assertThat(c.limits().listenBacklog()).isEqualTo(4096);
    assertThat(c.tls()).isNull();
    assertThat(c.limits().maxAgents()).isEqualTo(10_000);
    assertThat(c.security().tls().minVersion()).isEqualTo("VersionTLS12");
    assertThat(c.security().tls().cipherSuites()).isEmpty();
    assertThat(c.security().agentAuth().required()).isFalse();
    assertThat(c.apiserverProtocol()).isEqualTo(ServerConfig.ApiserverProtocol.AUTO);
    assertThat(c.routing().defaultRoute()).isEqualTo(ServerConfig.DefaultRoute.AUTO);
    TunnelServerMain pinned = new TunnelServerMain();
    TunnelServerMain.commandLine(pinned)
        .parseArgs("--server-id", "s1", "--apiserver-protocol", "http-connect");
    assertThat(pinned.toConfig().apiserverProtocol())
        .isEqualTo(ServerConfig.ApiserverProtocol.HTTP_CONNECT);
  }

  @Test
  void securityFlagsBuildTheirConfigAndConflictsAreNamed() throws Exception {
    TunnelServerMain ok = new TunnelServerMain();
    TunnelServerMain.commandLine(ok)
        .parseArgs(
            "--server-id", "s",
            "--kubeconfig", "/k",
            "--authentication-audience", "egress-tunnel",
            "--agent-namespace", "kube-system",
            "--agent-service-account", "egress-agent",
            "--tls-min-version", "VersionTLS13",
            "--tls-cipher-suites", "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384",
            "--max-agents", "5");
    ServerConfig c = ok.toConfig();
    assertThat(c.security().agentAuth().tokenReview().audiences()).containsExactly("egress-tunnel");
    assertThat(c.security().agentAuth().tokenReview().serviceAccount()).isEqualTo("egress-agent");
    assertThat(c.security().tls().cipherSuites())
        .containsExactly("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384");
    assertThat(c.limits().maxAgents()).isEqualTo(5);

    String[][] conflicts = {
      {"--authentication-audience", "x"}, // no API to review with
      {"--uds-group", "wheel"},
      {"--agent-client-ca", "/ca.pem"},
      {"--kubeconfig", "/k", "--agent-namespace", "n"},
      {"--kubeconfig", "/k", "--authentication-audience", "x", "--agent-namespace", "n"},
      {"--tls-min-version", "VersionTLS10"},
      {"--tls-cipher-suites", "TLS_RSA_WITH_NULL_SHA999"},
      {"--max-agents", "0"},
      {"--client-allowed-names", "kube-apiserver"},
    };
    String[] expected = {
      "--authentication-audience needs --kubeconfig or --in-cluster",
      "--uds-group needs --uds",
      "--agent-client-ca needs --agent-tls-cert",
      "need --authentication-audience",
      "--agent-namespace and --agent-service-account go together",
      "VersionTLS12 or VersionTLS13",
      "unsupported TLS cipher suites [TLS_RSA_WITH_NULL_SHA999]",
      "--max-agents",
      "--client-allowed-names needs --client-ca",
    };
    for (int i = 0; i < conflicts.length; i++) {
      TunnelServerMain m = new TunnelServerMain();
      String[] args = java.util.Arrays.copyOf(conflicts[i], conflicts[i].length + 2);
      args[args.length - 2] = "--server-id";
      args[args.length - 1] = "s";
      TunnelServerMain.commandLine(m).parseArgs(args);
      assertThatThrownBy(m::toConfig).hasMessageContaining(expected[i]);
    }
  }

  @Test
  void badValuesAreReportedClearly() {
    TunnelServerMain mode = new TunnelServerMain();
    TunnelServerMain.commandLine(mode).parseArgs("--mode", "nodes", "--server-id", "s");
    assertThatThrownBy(mode::toConfig).hasMessageContaining("disabled, agent, pod or cluster");
    TunnelServerMain tls = new TunnelServerMain();
    TunnelServerMain.commandLine(tls).parseArgs("--tls-cert", "/x.pem", "--server-id", "s");
    assertThatThrownBy(tls::toConfig).hasMessageContaining("--tls-key and --client-ca");
    TunnelServerMain frame = new TunnelServerMain();
    TunnelServerMain.commandLine(frame).parseArgs("--max-frame-payload", "1Ki", "--server-id", "s");
    assertThatThrownBy(frame::toConfig).hasMessageContaining("--max-frame-payload 1024");
    TunnelServerMain both = new TunnelServerMain();
    TunnelServerMain.commandLine(both)
        .parseArgs("--kubeconfig", "/k", "--in-cluster", "--server-id", "s");
    assertThatThrownBy(both::toConfig).hasMessageContaining("exclude each other");
    TunnelServerMain nodeOnly = new TunnelServerMain();
    TunnelServerMain.commandLine(nodeOnly).parseArgs("--node-name", "cp-1", "--server-id", "s");
    assertThatThrownBy(nodeOnly::toConfig).hasMessageContaining("--node-name needs --kubeconfig");
    TunnelServerMain dur = new TunnelServerMain();
    TunnelServerMain.commandLine(dur).parseArgs("--dial-timeout", "soon", "--server-id", "s");
    assertThatThrownBy(dur::toConfig).hasMessageContaining("not a duration: 'soon'");
    TunnelServerMain proto = new TunnelServerMain();
    TunnelServerMain.commandLine(proto).parseArgs("--apiserver-protocol", "h2", "--server-id", "s");
    assertThatThrownBy(proto::toConfig)
        .hasMessage("--apiserver-protocol h2 is not one of auto, http-connect, grpc");
    TunnelServerMain route = new TunnelServerMain();
    TunnelServerMain.commandLine(route).parseArgs("--default-route", "agent", "--server-id", "s");
    assertThatThrownBy(route::toConfig)
        .hasMessage("--default-route agent is not one of auto, direct, agents, reject");
  }
}
