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
          "--node-name"
        }) {
      assertThat(out.toString()).contains(flag);
    }
    assertThat(out.toString()).contains("127.0.0.1:8090").contains("0.0.0.0:8091");
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
    assertThat(c.limits().initialWindow()).isEqualTo(256 * 1024);
    assertThat(c.limits().maxFramePayload()).isEqualTo(256 * 1024);
    assertThat(c.limits().listenBacklog()).isEqualTo(4096);
    assertThat(c.tls()).isNull();
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
  }
}
