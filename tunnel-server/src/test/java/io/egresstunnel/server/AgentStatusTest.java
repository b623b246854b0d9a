package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.agent.TunnelAgentMain;
import io.egresstunnel.routing.EgressMode;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** {@code tunnel-agent status}: the agent's connections to servers and its streams. */
class AgentStatusTest {
  private record Run(int exit, String out, String err) {}

  private static Run agentStatus(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    var cl = TunnelAgentMain.commandLine();
    cl.setOut(new PrintWriter(out));
    cl.setErr(new PrintWriter(err));
    String[] all = new String[args.length + 1];
    all[0] = "status";
    System.arraycopy(args, 0, all, 1, args.length);
    int exit = cl.execute(all);
    return new Run(exit, out.toString(), err.toString());
  }

  @Test
  void showsTheSessionToTheServerAndAnOpenStreamWithItsBytes() throws Exception {
    try (TunnelFixture fx = new TunnelFixture(EgressMode.AGENT);
        TestTarget echo = new TestTarget("127.0.15.1", 0, TestTarget::echo)) {
      TunnelAgent agent =
          fx.startAgent(
              fx.agentConfig("node-s", "127.0.15.1", null, EgressMode.AGENT)
                  .withAdminListen(new InetSocketAddress("127.0.0.1", 0))
                  .withKubeletPort(echo.port()));
      String admin = "127.0.0.1:" + agent.adminAddress().getPort();
      String target = "127.0.15.1:" + echo.port();
      ConnectClient.Answer answer = ConnectClient.connect(fx.proxy(), target);
      assertThat(answer.status()).isEqualTo(200);
      try (Socket s = answer.socket()) {
        OutputStream out = s.getOutputStream();
        InputStream in = s.getInputStream();
        out.write(new byte[3000]);
        out.flush();
        byte[] back = in.readNBytes(3000);
        assertThat(back).hasSize(3000);

        Run json = agentStatus("--admin", admin, "--json");
        assertThat(json.exit()).isZero();
        assertThat(json.out())
            .contains("\"node\" : \"node-s\"")
            .contains("\"serverId\" : \"server-1\"")
            .contains("\"state\" : \"established\"")
            .contains("\"address\" : \"127.0.0.1:" + fx.server.agentAddress().getPort() + "\"")
            .contains("\"target\" : \"" + target + "\"")
            .contains("\"bytesToTarget\" : 3000")
            .contains("\"bytesFromTarget\" : 3000");

        Run table = agentStatus("--admin", admin);
        assertThat(table.exit()).isZero();
        assertThat(table.out())
            .startsWith("agent for node node-s, 1 of 1 server(s) held\n")
            .contains("1 connection(s)\n")
            .contains("1 open stream(s)\n")
            .doesNotContain(" /127.");
        String session =
            table.out().lines().filter(l -> l.startsWith("server-1")).findFirst().orElseThrow();
        assertThat(session.split("\\s+")).containsSubsequence("established", "1", "1", "3000B");
        assertThat(session)
            .contains("127.0.0.1:" + fx.server.agentAddress().getPort())
            .contains("established")
            .contains(fx.agentUrl().toString());
        String stream =
            table.out().lines().filter(l -> l.startsWith(target)).findFirst().orElseThrow();
        assertThat(stream.split("\\s+")).containsSubsequence("server-1", "3000B", "3000B", "open");
      }
      await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> agentStatus("--admin", admin).out().contains("0 open stream(s)"));
    }
  }

  @Test
  void anUnreachableAdminListenerIsExitOneWithTheUrl() throws Exception {
    int port;
    try (java.net.ServerSocket s =
        new java.net.ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
      port = s.getLocalPort();
    }
    Run r = agentStatus("--admin", "127.0.0.1:" + port);
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err())
        .isEqualTo("tunnel-agent status: --admin 127.0.0.1:" + port + ": connection refused\n");
  }
}
