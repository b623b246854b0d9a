package io.egresstunnel.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.routing.EgressMode;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class TunnelAgentMainTest {

  @Test
  void helpExplainsEveryFlag() {
    StringWriter out = new StringWriter();
    CommandLine cl = TunnelAgentMain.commandLine();
    cl.setOut(new PrintWriter(out));
    assertThat(cl.execute("--help")).isZero();
    for (String flag :
        new String[] {
          "--server",
          "--node-name",
          "--node-ip",
          "--pod-cidr",
          "--kubelet-port",
          "--ca-cert",
          "--token-file",
          "--cert",
          "--key",
          "--allow",
          "--mode",
          "--websocket-masking",
          "--initial-window",
          "--max-frame-payload",
          "--max-streams",
          "--max-pending-dials",
          "--dial-timeout",
          "--handshake-timeout",
          "--ping-interval",
          "--ping-timeout",
          "--reconnect-max",
          "--threads",
          "--sync-interval",
          "--grace-period",
          "--admin-listen"
        }) {
      assertThat(out.toString()).contains(flag);
    }
  }

  @Test
  void flagsBecomeTheConfig() {
    TunnelAgentMain main = new TunnelAgentMain();
    TunnelAgentMain.commandLine(main)
        .parseArgs(
            "--server",
            "ws://10.0.0.1:8091",
            "--server",
            "wss://s2.example:443",
            "--node-name",
            "worker-1",
            "--node-ip",
            "127.0.0.2",
            "--node-ip",
            "fd00::2",
            "--pod-cidr",
            "10.42.1.0/24",
            "--kubelet-port",
            "10251",
            "--allow",
            "10.0.0.0/8:443",
            "--mode",
            "cluster",
            "--initial-window",
            "128Ki",
            "--dial-timeout",
            "3s");
    AgentConfig c = main.toConfig();
    assertThat(c.servers())
        .containsExactly(URI.create("ws://10.0.0.1:8091"), URI.create("wss://s2.example:443"));
    assertThat(c.nodeAddresses()).hasSize(2);
    assertThat(c.podCidrs()).hasSize(1);
    assertThat(c.kubeletPort()).isEqualTo(10251);
    assertThat(c.mode()).isEqualTo(EgressMode.CLUSTER);
    assertThat(c.limits().initialWindow()).isEqualTo(128 * 1024);
    assertThat(c.limits().dialTimeout()).hasSeconds(3);
    assertThat(ServerConnection.tunnelUri(c.servers().get(0)).getPath()).isEqualTo("/v1/tunnel");
  }

  @Test
  void badValuesAreReportedClearly() {
    TunnelAgentMain main = new TunnelAgentMain();
    TunnelAgentMain.commandLine(main).parseArgs("--server", "http://x:1", "--node-name", "n");
    assertThatThrownBy(main::toConfig).hasMessageContaining("ws:// or wss://");
    TunnelAgentMain bad = new TunnelAgentMain();
    TunnelAgentMain.commandLine(bad)
        .parseArgs("--server", "ws://x:1", "--node-name", "n", "--node-ip", "not-an-ip");
    assertThatThrownBy(bad::toConfig).hasMessageContaining("not an IP address: not-an-ip");
    StringWriter err = new StringWriter();
    CommandLine cl = TunnelAgentMain.commandLine();
    cl.setErr(new PrintWriter(err));
    assertThat(cl.execute("--node-name", "n")).isNotZero();
    assertThat(err.toString()).contains("--server");
  }

  @Test
  void adminListenDefaultsToLoopbackAndEmptyTurnsItOff() {
    TunnelAgentMain main = new TunnelAgentMain();
    TunnelAgentMain.commandLine(main).parseArgs("--server", "ws://x:1", "--node-name", "n");
    assertThat(main.toConfig().adminListen()).hasToString("/127.0.0.1:8093");
    TunnelAgentMain off = new TunnelAgentMain();
    TunnelAgentMain.commandLine(off)
        .parseArgs("--server", "ws://x:1", "--node-name", "n", "--admin-listen", "");
    assertThat(off.toConfig().adminListen()).isNull();
  }
}
