package io.egresstunnel.agent;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * How tunnel-agent reports mistakes, through the command line main runs: one line naming the flag,
 * file or address, exit 2 for usage errors and 1 for runtime failures.
 */
@Timeout(120) // a case that wrongly starts the agent would run until interrupted
class TunnelAgentMainErrorsTest {
  @TempDir Path dir;

  record Run(int exit, String out, String err) {}

  private static Run run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine cl = TunnelAgentMain.commandLine(new TunnelAgentMain(), Map.of());
    cl.setOut(new PrintWriter(out, true));
    cl.setErr(new PrintWriter(err, true));
    int exit = cl.execute(args);
    return new Run(exit, out.toString(), err.toString());
  }

  /** An agent for node n of a server on a closed loopback port, admin on an ephemeral port. */
  private static Run agent(String... args) {
    List<String> all = new ArrayList<>(List.of("--node-name", "n", "--node-ip", "127.0.0.9"));
    if (!Arrays.asList(args).contains("--admin-listen")) {
      all.addAll(List.of("--admin-listen", "127.0.0.1:0"));
    }
    if (!Arrays.asList(args).contains("--server")) {
      all.addAll(List.of("--server", "wss://127.0.0.1:1"));
    }
    all.addAll(Arrays.asList(args));
    return run(all.toArray(String[]::new));
  }

  @Test
  void anUnknownFlagGetsAHintNotTheUsage() {
    Run r = run("--bogus");
    assertThat(r.exit()).isEqualTo(2);
    assertThat(r.err().lines())
        .containsExactly(
            "tunnel-agent: unknown flag '--bogus'", "Try 'tunnel-agent --help' for the flags.");
    Run missing = run("--node-name", "n");
    assertThat(missing.exit()).isEqualTo(2);
    assertThat(missing.err()).contains("--server").doesNotContain("Usage:");
  }

  @Test
  void badServerUrlsAreUsageErrorsInPlainWords() {
    String[][] cases = {
      {"ws://x:99999", "port 99999 is out of range (1-65535)"},
      {"ws://x:0", "port 0 is out of range (1-65535)"},
      {"ftp://x:1", "the scheme must be ws:// or wss://, not ftp"},
      {"ws://:8091", "no host in it"},
      {"ws:///v1/tunnel", "no host in it"},
      {"x:1", "give a URL such as ws://HOST:PORT or wss://HOST:PORT"},
      {"ws://x:abc", "the port 'abc' is not a number"},
      {"ws://a_b:1", "'a_b' is not a valid host name or address"},
    };
    for (String[] c : cases) {
      Run r = agent("--server", c[0]);
      assertThat(r.exit()).as(c[0]).isEqualTo(2);
      assertThat(r.err().lines())
          .as(c[0])
          .containsExactly("tunnel-agent: --server " + c[0] + ": " + c[1]);
    }
  }

  @Test
  void aServerUrlWithoutPortGetsTheServersDefaultAgentPort() {
    assertThat(AgentConfig.parseServer("ws://server.example"))
        .isEqualTo(URI.create("ws://server.example:8091"));
    assertThat(AgentConfig.parseServer("WSS://server.example/"))
        .isEqualTo(URI.create("wss://server.example:8091/"));
    assertThat(AgentConfig.parseServer("wss://[fd00::1]:443"))
        .isEqualTo(URI.create("wss://[fd00::1]:443"));
    StringWriter help = new StringWriter();
    CommandLine cl = TunnelAgentMain.commandLine();
    cl.setOut(new PrintWriter(help));
    cl.execute("--help");
    assertThat(help.toString()).contains("without :PORT, 8091");
  }

  @Test
  void missingFilesAreNamedWithTheirFlag() throws IOException {
    String missing = dir.resolve("missing.pem").toString();
    Path garbage = Files.writeString(dir.resolve("garbage.pem"), "garbage\n");
    Path empty = Files.createFile(dir.resolve("empty"));
    String[][] cases = {
      {"--cert", missing, "--key", garbage.toString()},
      {"--ca-cert", missing},
      {"--token-file", missing},
      {"--kubeconfig", missing},
    };
    for (String[] args : cases) {
      Run r = agent(args);
      assertThat(r.exit()).as(String.join(" ", args)).isEqualTo(2);
      assertThat(r.err().lines())
          .as(String.join(" ", args))
          .containsExactly("tunnel-agent: " + args[0] + " " + missing + ": no such file");
    }
    Run ca = agent("--ca-cert", garbage.toString());
    assertThat(ca.err().lines())
        .containsExactly(
            "tunnel-agent: --ca-cert "
                + garbage
                + ": no PEM certificate in it (no -----BEGIN CERTIFICATE----- block)");
    Run token = agent("--token-file", empty.toString());
    assertThat(token.exit()).isEqualTo(2);
    assertThat(token.err().lines())
        .containsExactly("tunnel-agent: --token-file " + empty + ": the file is empty");
  }

  @Test
  void anAdminAddressInUseIsARuntimeFailure() throws IOException {
    try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
      String address = "127.0.0.1:" + taken.getLocalPort();
      Run r = agent("--server", "ws://127.0.0.1:1", "--admin-listen", address);
      assertThat(r.exit()).as(r.err()).isEqualTo(1);
      assertThat(r.err().lines())
          .containsExactly("tunnel-agent: --admin-listen " + address + ": address already in use");
    }
  }
}
