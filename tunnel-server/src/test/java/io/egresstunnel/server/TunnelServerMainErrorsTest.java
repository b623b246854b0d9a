package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.proto.config.Logging;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
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
 * How tunnel-server and its subcommands report mistakes, through the command line main runs: one
 * line naming the flag, file or address, exit 2 for usage errors and 1 for runtime failures.
 */
@Timeout(120) // a case that wrongly starts the server would run until interrupted
class TunnelServerMainErrorsTest {
  @TempDir Path dir;

  record Run(int exit, String out, String err) {}

  /** Runs tunnel-server as main does, with every listener on an ephemeral loopback port. */
  private static Run server(String... args) {
    List<String> given = Arrays.asList(args);
    List<String> all = new ArrayList<>(List.of("--server-id", "s"));
    for (String flag : List.of("--connect-listen", "--agent-listen", "--admin-listen")) {
      if (!given.contains(flag)) {
        all.addAll(List.of(flag, "127.0.0.1:0"));
      }
    }
    all.addAll(given);
    return run(all.toArray(String[]::new));
  }

  private static Run run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine cl = TunnelServerMain.commandLine(new TunnelServerMain(), Map.of());
    cl.setOut(new PrintWriter(out, true));
    cl.setErr(new PrintWriter(err, true));
    int exit = cl.execute(args);
    return new Run(exit, out.toString(), err.toString());
  }

  /** Real certificates, as `tunnel-server certs` writes them. */
  private Path pki() {
    Path pki = dir.resolve("pki");
    Run r = run("certs", "--dir", pki.toString(), "--server-san", "localhost");
    assertThat(r.exit()).as(r.err()).isZero();
    return pki;
  }

  @Test
  void anUnknownFlagGetsAHintNotTheUsage() {
    Run bogus = run("--bogus");
    assertThat(bogus.exit()).isEqualTo(2);
    assertThat(bogus.err().lines())
        .containsExactly(
            "tunnel-server: unknown flag '--bogus'", "Try 'tunnel-server --help' for the flags.");
    Run typo = run("--max-agnets", "5");
    assertThat(typo.exit()).isEqualTo(2);
    assertThat(typo.err().lines().findFirst())
        .hasValue("tunnel-server: unknown flag '--max-agnets'; did you mean '--max-agents'?");
    Run sub = run("certs", "--bogus");
    assertThat(sub.exit()).isEqualTo(2);
    assertThat(sub.err().lines())
        .containsExactly(
            "tunnel-server certs: unknown flag '--bogus'",
            "Try 'tunnel-server certs --help' for the flags.");
    Run command = run("stauts");
    assertThat(command.err().lines().findFirst())
        .hasValue("tunnel-server: unknown command 'stauts'; did you mean 'status'?");
    assertThat(run("--help").out()).contains("Usage:").contains("--max-agents");
  }

  @Test
  void aShortTokenIsOneLine() throws IOException {
    Path tokens = Files.writeString(dir.resolve("tokens"), "short node-a\n");
    Run r = server("--agent-token-file", tokens.toString());
    assertThat(r.exit()).isEqualTo(2);
    assertThat(r.err().lines())
        .containsExactly(
            "tunnel-server: --agent-token-file "
                + tokens
                + " line 1: expected 'TOKEN [NODE,...]' with a token of at least 16 characters");
  }

  @Test
  void missingFilesAreNamedWithTheirFlag() {
    Path pki = pki();
    String cert = pki.resolve("server.crt").toString();
    String key = pki.resolve("server.key").toString();
    String ca = pki.resolve("ca.crt").toString();
    String missing = dir.resolve("missing.pem").toString();
    String[][] cases = {
      {"--agent-token-file", missing},
      {"--tls-cert", missing, "--tls-key", key, "--client-ca", ca},
      {"--tls-cert", cert, "--tls-key", missing, "--client-ca", ca},
      {"--tls-cert", cert, "--tls-key", key, "--client-ca", missing},
      {"--agent-tls-cert", missing, "--agent-tls-key", key},
      {"--agent-tls-cert", cert, "--agent-tls-key", missing},
      {"--agent-tls-cert", cert, "--agent-tls-key", key, "--agent-client-ca", missing},
      {"--kubeconfig", missing},
    };
    for (String[] args : cases) {
      String flag = args[Arrays.asList(args).indexOf(missing) - 1];
      Run r = server(args);
      assertThat(r.exit()).as(String.join(" ", args)).isEqualTo(2);
      assertThat(r.err().lines())
          .as(String.join(" ", args))
          .containsExactly("tunnel-server: " + flag + " " + missing + ": no such file");
    }
  }

  @Test
  void garbageInACertificateOrKeyFileIsNamed() throws IOException {
    Path pki = pki();
    Path garbage = Files.writeString(dir.resolve("garbage.pem"), "not a certificate\n");
    Run cert =
        server(
            "--tls-cert",
            garbage.toString(),
            "--tls-key",
            pki.resolve("server.key").toString(),
            "--client-ca",
            pki.resolve("ca.crt").toString());
    assertThat(cert.exit()).isEqualTo(2);
    assertThat(cert.err().lines())
        .containsExactly(
            "tunnel-server: --tls-cert "
                + garbage
                + ": no PEM certificate in it (no -----BEGIN CERTIFICATE----- block)");
    Run key =
        server(
            "--agent-tls-cert",
            pki.resolve("server.crt").toString(),
            "--agent-tls-key",
            pki.resolve("server.crt").toString());
    assertThat(key.exit()).isEqualTo(2);
    assertThat(key.err().lines())
        .containsExactly(
            "tunnel-server: --agent-tls-key "
                + pki.resolve("server.crt")
                + ": no PEM private key in it (no -----BEGIN PRIVATE KEY----- block)");
  }

  @Test
  void aListenerAddressInUseIsARuntimeFailure() throws IOException {
    try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
      String address = "127.0.0.1:" + taken.getLocalPort();
      for (String flag : List.of("--connect-listen", "--agent-listen", "--admin-listen")) {
        Run r = server(flag, address);
        assertThat(r.exit()).as(flag).isEqualTo(1);
        assertThat(r.err().lines())
            .as(flag)
            .containsExactly("tunnel-server: " + flag + " " + address + ": address already in use");
      }
    }
  }

  @Test
  void statusOfAServerThatIsNotThere() throws IOException {
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
      port = s.getLocalPort();
    }
    Run r = run("status", "--admin", "127.0.0.1:" + port);
    assertThat(r.exit()).isEqualTo(1);
    assertThat(r.err().lines())
        .containsExactly(
            "tunnel-server status: --admin 127.0.0.1:" + port + ": connection refused");
  }

  @Test
  void debugLoggingAddsTheStackTraceAfterTheLine() throws IOException {
    Path tokens = Files.writeString(dir.resolve("tokens"), "short\n");
    PrintStream stderr = System.err;
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    System.setErr(new PrintStream(log, true, StandardCharsets.UTF_8));
    try {
      Run r = server("--agent-token-file", tokens.toString(), "--log-level", "debug");
      assertThat(r.exit()).isEqualTo(2);
      assertThat(r.err().lines()).hasSize(1);
    } finally {
      System.setErr(stderr);
      Logging.configure(Logging.Format.TEXT, Logging.Level.INFO);
    }
    assertThat(log.toString(StandardCharsets.UTF_8))
        .contains("DEBUG")
        .contains("java.lang.IllegalArgumentException: --agent-token-file " + tokens)
        .contains("\tat io.egresstunnel.server.agents.AgentAuthenticator");
  }
}
