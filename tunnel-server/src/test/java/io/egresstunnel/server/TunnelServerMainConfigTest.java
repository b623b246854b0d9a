package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.util.LogbackMDCAdapter;
import ch.qos.logback.core.OutputStreamAppender;
import ch.qos.logback.core.read.ListAppender;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.egresstunnel.proto.config.ConfigSources;
import io.egresstunnel.proto.config.Logging;
import io.egresstunnel.routing.EgressMode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;

/** tunnel-server's flags from the command line, the environment and a config file. */
class TunnelServerMainConfigTest {
  static final String P = TunnelServerMain.ENV_PREFIX;

  @TempDir Path dir;

  private Path file(String yaml) throws IOException {
    Path f = dir.resolve("server.yaml");
    Files.writeString(f, yaml);
    return f;
  }

  private static TunnelServerMain parse(Map<String, String> env, String... args) {
    TunnelServerMain main = new TunnelServerMain();
    TunnelServerMain.commandLine(main, env).parseArgs(args);
    return main;
  }

  @Test
  void fileEnvironmentAndFlagsAgree() throws Exception {
    TunnelServerMain byFlags =
        parse(
            Map.of(),
            "--mode=pod",
            "--server-id=s1",
            "--max-agents=5",
            "--connect-listen=127.0.0.1:9090",
            "--kubeconfig=/etc/k.yaml",
            "--authentication-audience=egress-tunnel,other",
            "--tls-min-version=VersionTLS13",
            "--tls-cipher-suites=TLS_AES_128_GCM_SHA256",
            "--tls-cipher-suites=TLS_AES_256_GCM_SHA384",
            "--dial-timeout=3s",
            "--log-format=json");
    TunnelServerMain byEnv =
        parse(
            Map.of(
                P + "MODE", "pod",
                P + "SERVER_ID", "s1",
                P + "MAX_AGENTS", "5",
                P + "CONNECT_LISTEN", "127.0.0.1:9090",
                P + "KUBECONFIG", "/etc/k.yaml",
                P + "AUTHENTICATION_AUDIENCE", "egress-tunnel,other",
                P + "TLS_MIN_VERSION", "VersionTLS13",
                P + "TLS_CIPHER_SUITES", "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384",
                P + "DIAL_TIMEOUT", "3s",
                P + "LOG_FORMAT", "json"));
    Path f =
        file(
            """
            # as K3s's config.yaml: the flags' names without dashes
            mode: pod
            server-id: s1
            max-agents: 5
            connect-listen: 127.0.0.1:9090
            kubeconfig: /etc/k.yaml
            authentication-audience:
              - egress-tunnel
              - other
            tls-min-version: VersionTLS13
            tls-cipher-suites: TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384
            dial-timeout: 3s
            log-format: json
            """);
    TunnelServerMain byFile = parse(Map.of(), "--config", f.toString());
    TunnelServerMain byEnvFile = parse(Map.of(P + "CONFIG", f.toString()));

    ServerConfig expected = byFlags.toConfig();
    assertThat(expected.mode()).isEqualTo(EgressMode.POD);
    assertThat(expected.limits().maxAgents()).isEqualTo(5);
    assertThat(expected.connectListen().getPort()).isEqualTo(9090);
    assertThat(expected.security().agentAuth().tokenReview().audiences())
        .containsExactly("egress-tunnel", "other");
    assertThat(expected.security().tls().cipherSuites())
        .containsExactly("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384");
    for (TunnelServerMain other : new TunnelServerMain[] {byEnv, byFile, byEnvFile}) {
      assertThat(other.toConfig()).usingRecursiveComparison().isEqualTo(expected);
      assertThat(other.common.logFormat).isEqualTo(Logging.Format.JSON);
      assertThat(other.sources.warnings()).isEmpty();
    }
  }

  /** Two servers on one host listen on different agent ports, so their default ids differ. */
  @Test
  void theDefaultServerIdIsTheHostNameAndTheAgentPort() throws Exception {
    String host = java.net.InetAddress.getLocalHost().getHostName();
    assertThat(parse(Map.of(), "--agent-listen=127.0.0.1:9191").toConfig().serverId())
        .isEqualTo(host + "-9191");
    assertThat(parse(Map.of()).toConfig().serverId()).isEqualTo(host + "-8091");
    assertThat(parse(Map.of(), "--agent-listen=127.0.0.1:9191", "--server-id=s9").toConfig())
        .extracting(ServerConfig::serverId)
        .isEqualTo("s9");
  }

  @Test
  void aFlagBeatsTheEnvironmentWhichBeatsTheFileAndEachConflictIsLogged() throws Exception {
    Path f = file("mode: agent\nmax-agents: 7\nserver-id: from-file\n");
    TunnelServerMain main =
        parse(
            Map.of(P + "CONFIG", f.toString(), P + "MODE", "cluster", P + "MAX_AGENTS", "6"),
            "--mode",
            "pod");
    ServerConfig c = main.toConfig();
    assertThat(c.mode()).isEqualTo(EgressMode.POD);
    assertThat(c.limits().maxAgents()).isEqualTo(6);
    assertThat(c.serverId()).isEqualTo("from-file");

    Logger logger = (Logger) LoggerFactory.getLogger(ConfigSources.class);
    ListAppender<ILoggingEvent> appender = new ListAppender<>();
    appender.start();
    logger.addAppender(appender);
    try {
      main.sources.logSources();
    } finally {
      logger.detachAppender(appender);
    }
    assertThat(appender.list)
        .filteredOn(e -> e.getLevel() == Level.WARN)
        .extracting(ILoggingEvent::getFormattedMessage)
        .containsExactly(
            "--mode=pod from the command line overrides " + P + "MODE=cluster from the environment",
            "--mode=pod from the command line overrides mode: agent from " + f,
            P + "MAX_AGENTS=6 from the environment overrides max-agents: 7 from " + f);
  }

  @Test
  void configErrorsAreReportedWithTheirSource() throws IOException {
    Path f = file("mode: pod\nmax-agent: 5\n");
    StringWriter err = new StringWriter();
    CommandLine cl = TunnelServerMain.commandLine(new TunnelServerMain(), Map.of());
    cl.setErr(new PrintWriter(err, true));
    assertThat(cl.execute("--config", f.toString())).isEqualTo(2);
    assertThat(err.toString())
        .startsWith(
            "tunnel-server: config file "
                + f
                + ", line 2: unknown setting 'max-agent'; did you mean 'max-agents'?")
        .doesNotContain("Usage:");

    assertThatThrownBy(() -> parse(Map.of(P + "LISTEN_BACKLOG", "deep")))
        .hasMessage("environment variable " + P + "LISTEN_BACKLOG: 'deep' is not a whole number");

    // A value that parses but is out of range: the message says where it came from.
    TunnelServerMain range = parse(Map.of(), "--config", file("max-agents: 0\n").toString());
    assertThatThrownBy(range::toConfig)
        .satisfies(
            e ->
                assertThat(range.sources.withOrigins(e.getMessage()))
                    .contains("--max-agents")
                    .endsWith("(max-agents: 0 from " + dir.resolve("server.yaml") + ")"));
  }

  @Test
  void helpNamesTheEnvironmentPrefixAndTheConfigFile() {
    StringWriter out = new StringWriter();
    CommandLine cl = TunnelServerMain.commandLine(new TunnelServerMain(), Map.of());
    cl.setOut(new PrintWriter(out, true));
    assertThat(cl.execute("--help")).isZero();
    assertThat(out.toString())
        .contains("--config=FILE", "--log-level", "--log-format")
        .contains(P + "<FLAG>", P + "CONFIG", "docs/configuration.md");
  }

  @Test
  void subcommandsIgnoreTheConfigFile() throws IOException {
    Path broken = file("max-agent: [");
    StringWriter out = new StringWriter();
    CommandLine cl =
        TunnelServerMain.commandLine(
            new TunnelServerMain(), Map.of(P + "CONFIG", broken.toString()));
    cl.setOut(new PrintWriter(out, true));
    String pki = dir.resolve("pki").toString();
    assertThat(cl.execute("certs", "--dir", pki, "--server-san", "127.0.0.1", "--node", "node-a"))
        .isZero();
    assertThat(dir.resolve("pki/agent-node-a.crt")).exists();
  }

  @Test
  void jsonLogLinesParse() throws IOException {
    LoggerContext context = new LoggerContext();
    context.setMDCAdapter(new LogbackMDCAdapter());
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    OutputStreamAppender<ILoggingEvent> appender = new OutputStreamAppender<>();
    appender.setOutputStream(bytes);
    Logging.configure(context, Logging.Format.JSON, Logging.Level.DEBUG, appender);
    context.getLogger(TunnelServer.class).info("listening for CONNECT on {}", "127.0.0.1:8090");
    context
        .getLogger("io.egresstunnel.proto.session.TunnelStream")
        .debug("stream 3 to \"10.0.0.2:10250\" via node node-a closed");
    context.getLogger("io.netty.channel.Foo").debug("not at debug: a library");
    context.stop();

    String[] lines = bytes.toString(StandardCharsets.UTF_8).split("\n");
    assertThat(lines).hasSize(2);
    ObjectMapper json = new ObjectMapper();
    JsonNode first = json.readTree(lines[0]);
    assertThat(first.get("level").asText()).isEqualTo("INFO");
    assertThat(first.get("loggerName").asText()).isEqualTo(TunnelServer.class.getName());
    assertThat(first.get("formattedMessage").asText())
        .isEqualTo("listening for CONNECT on 127.0.0.1:8090");
    assertThat(first.get("timestamp").asLong()).isPositive();
    assertThat(first.get("threadName").asText()).isNotEmpty();
    JsonNode second = json.readTree(lines[1]);
    assertThat(second.get("level").asText()).isEqualTo("DEBUG");
    assertThat(second.get("formattedMessage").asText())
        .isEqualTo("stream 3 to \"10.0.0.2:10250\" via node node-a closed");
  }
}
