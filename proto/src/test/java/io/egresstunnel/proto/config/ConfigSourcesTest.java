package io.egresstunnel.proto.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

class ConfigSourcesTest {
  static final String PREFIX = "EGRESS_TEST_";

  enum Masking {
    AUTO,
    ALWAYS,
    NEVER
  }

  @Command(name = "test-cmd", mixinStandardHelpOptions = true, subcommands = Sub.class)
  static final class Cmd implements Callable<Integer> {
    @Option(names = "--mode", defaultValue = "agent")
    String mode;

    @Option(names = "--max-agents", defaultValue = "10000")
    int maxAgents;

    @Option(names = "--in-cluster")
    boolean inCluster;

    @Option(names = "--server", split = ",")
    List<String> servers = new ArrayList<>();

    @Option(names = "--websocket-masking", defaultValue = "auto")
    Masking masking;

    @Mixin CommonOptions common = new CommonOptions();

    ConfigSources sources;

    @Override
    public Integer call() {
      return 0;
    }
  }

  @Command(name = "sub")
  static final class Sub implements Callable<Integer> {
    @Option(names = "--dir", required = true)
    Path dir;

    @Override
    public Integer call() {
      return 0;
    }
  }

  @TempDir Path dir;

  private static CommandLine commandLine(Cmd cmd, Map<String, String> env) {
    CommandLine cl = CommandErrors.install(new CommandLine(cmd));
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    cmd.sources = ConfigSources.install(cl, PREFIX, env);
    return cl;
  }

  private static Cmd parse(Map<String, String> env, String... args) {
    Cmd cmd = new Cmd();
    commandLine(cmd, env).parseArgs(args);
    return cmd;
  }

  private Path file(String yaml) throws IOException {
    Path f = dir.resolve("config.yaml");
    Files.writeString(f, yaml);
    return f;
  }

  @Test
  void eachSourceAloneGivesTheSameSettings() throws IOException {
    Cmd byFlags =
        parse(
            Map.of(),
            "--mode",
            "pod",
            "--max-agents",
            "5",
            "--in-cluster",
            "--server",
            "ws://a:1",
            "--server",
            "ws://b:2",
            "--websocket-masking",
            "never",
            "--log-level",
            "debug");
    Cmd byEnv =
        parse(
            Map.of(
                PREFIX + "MODE", "pod",
                PREFIX + "MAX_AGENTS", "5",
                PREFIX + "IN_CLUSTER", "true",
                PREFIX + "SERVER", "ws://a:1,ws://b:2",
                PREFIX + "WEBSOCKET_MASKING", "NEVER",
                PREFIX + "LOG_LEVEL", "debug"));
    Path f =
        file(
            """
            mode: pod
            max-agents: 5
            in-cluster: true
            server:
              - ws://a:1
              - ws://b:2
            websocket-masking: never
            log-level: debug
            """);
    Cmd byFile = parse(Map.of(), "--config", f.toString());
    for (Cmd c : List.of(byFlags, byEnv, byFile)) {
      assertThat(c.mode).isEqualTo("pod");
      assertThat(c.maxAgents).isEqualTo(5);
      assertThat(c.inCluster).isTrue();
      assertThat(c.servers).containsExactly("ws://a:1", "ws://b:2");
      assertThat(c.masking).isEqualTo(Masking.NEVER);
      assertThat(c.common.logLevel).isEqualTo(Logging.Level.DEBUG);
      assertThat(c.sources.warnings()).isEmpty();
    }
    assertThat(byFile.common.config).isEqualTo(f);
  }

  @Test
  void nothingGivenLeavesTheDefaults() {
    Cmd c = parse(Map.of("PATH", "/bin", "HOME", "/root"));
    assertThat(c.mode).isEqualTo("agent");
    assertThat(c.maxAgents).isEqualTo(10_000);
    assertThat(c.inCluster).isFalse();
    assertThat(c.servers).isEmpty();
    assertThat(c.common.logFormat).isEqualTo(Logging.Format.TEXT);
    assertThat(c.common.logLevel).isEqualTo(Logging.Level.INFO);
    assertThat(c.sources.warnings()).isEmpty();
  }

  @Test
  void aFlagBeatsTheEnvironmentWhichBeatsTheFile() throws IOException {
    Path f = file("mode: agent\nmax-agents: 7\nserver: ws://file:1\n");
    Map<String, String> env =
        Map.of(
            PREFIX + "CONFIG",
            f.toString(),
            PREFIX + "MODE",
            "cluster",
            PREFIX + "MAX_AGENTS",
            "6");
    Cmd c = parse(env, "--mode", "pod");
    assertThat(c.mode).isEqualTo("pod");
    assertThat(c.maxAgents).isEqualTo(6);
    assertThat(c.servers).containsExactly("ws://file:1");
    assertThat(c.common.config).isEqualTo(f);
  }

  @Test
  void aConflictIsLoggedNamingBothSourcesAndTheWinner() throws IOException {
    Path f = file("mode: agent\nmax-agents: 7\nin-cluster: false\n");
    Map<String, String> env = Map.of(PREFIX + "MODE", "cluster", PREFIX + "MAX_AGENTS", "6");
    Cmd c = parse(env, "--config", f.toString(), "--mode", "pod", "--in-cluster");
    assertThat(c.sources.warnings())
        .containsExactly(
            "--mode=pod from the command line overrides "
                + PREFIX
                + "MODE=cluster from the environment",
            "--mode=pod from the command line overrides mode: agent from " + f,
            PREFIX + "MAX_AGENTS=6 from the environment overrides max-agents: 7 from " + f,
            "--in-cluster=true from the command line overrides in-cluster: false from " + f);

    Logger logger = (Logger) LoggerFactory.getLogger(ConfigSources.class);
    ListAppender<ILoggingEvent> appender = new ListAppender<>();
    appender.start();
    logger.addAppender(appender);
    try {
      c.sources.logSources();
    } finally {
      logger.detachAppender(appender);
    }
    assertThat(appender.list)
        .filteredOn(e -> e.getLevel() == Level.WARN)
        .extracting(ILoggingEvent::getFormattedMessage)
        .containsExactlyElementsOf(c.sources.warnings());
    assertThat(appender.list)
        .filteredOn(e -> e.getLevel() == Level.INFO)
        .extracting(ILoggingEvent::getFormattedMessage)
        .containsExactly("settings: 2 from the environment, 3 from " + f);
  }

  @Test
  void theSameValueFromTwoSourcesIsNoConflict() throws IOException {
    Path f = file("max-agents: 05\nserver: [ws://a:1, ws://b:2]\nwebsocket-masking: NEVER\n");
    Cmd c =
        parse(
            Map.of(PREFIX + "SERVER", "ws://a:1, ws://b:2", PREFIX + "MAX_AGENTS", "5"),
            "--config",
            f.toString(),
            "--max-agents",
            "5",
            "--server",
            "ws://a:1,ws://b:2",
            "--websocket-masking",
            "never");
    assertThat(c.sources.warnings()).isEmpty();
  }

  @Test
  void listsTakeSequencesAndCommaStrings() throws IOException {
    assertThat(parse(Map.of(), "-c", file("server: [ws://a:1, ws://b:2]\n").toString()).servers)
        .containsExactly("ws://a:1", "ws://b:2");
    assertThat(parse(Map.of(), "--config", file("server: ws://a:1,ws://b:2\n").toString()).servers)
        .containsExactly("ws://a:1", "ws://b:2");
    assertThat(parse(Map.of(), "--config", file("server: ws://a:1\n").toString()).servers)
        .containsExactly("ws://a:1");
    assertThat(parse(Map.of(PREFIX + "SERVER", "ws://a:1,,ws://b:2,")).servers)
        .containsExactly("ws://a:1", "ws://b:2");
  }

  @Test
  void anUnknownKeyNamesTheFileTheLineAndTheClosestFlag() throws IOException {
    Path f = file("mode: pod\nmax-agent: 5\n");
    assertThatThrownBy(() -> parse(Map.of(), "--config", f.toString()))
        .isInstanceOf(ConfigSources.ConfigException.class)
        .hasMessage(
            "config file "
                + f
                + ", line 2: unknown setting 'max-agent'; did you mean 'max-agents'?");
    Path dashes = file("--mode: pod\n");
    assertThatThrownBy(() -> parse(Map.of(), "--config", dashes.toString()))
        .hasMessageContaining("unknown setting '--mode'; did you mean 'mode'?");
    Path underscores = file("log_level: debug\n");
    assertThatThrownBy(() -> parse(Map.of(), "--config", underscores.toString()))
        .hasMessageContaining("did you mean 'log-level'?");
    Path far = file("colour: blue\n");
    assertThatThrownBy(() -> parse(Map.of(), "--config", far.toString()))
        .hasMessageEndingWith("unknown setting 'colour'");
  }

  @Test
  void aValueOfTheWrongTypeNamesItsSource() throws IOException {
    String[][] cases = {
      {"max-agents: lots\n", "line 1: max-agents: 'lots' is not a whole number"},
      {"max-agents: 99999999999\n", "max-agents: '99999999999' is not a whole number"},
      {"in-cluster: yes\n", "line 1: in-cluster: 'yes' is not true or false"},
      {"websocket-masking: sometimes\n", "'sometimes' is not one of auto, always, never"},
      {"log-level: loud\n", "'loud' is not one of trace, debug, info, warn, error"},
      {"mode: [pod, agent]\n", "line 1: mode takes one value, not a list"},
      {"mode:\n  pod: true\n", "line 1: mode must be a value or a list of values, not a mapping"},
      {"mode:\n", "line 1: mode has no value"},
      {"server: [[ws://a:1]]\n", "server: a list may hold only plain values, not a list"},
      {"config: /other.yaml\n", "a config file cannot name another one"},
      {"mode: pod\nmode: agent\n", "line 2: mode is given twice (also on line 1)"},
    };
    for (String[] c : cases) {
      Path f = file(c[0]);
      assertThatThrownBy(() -> parse(Map.of(), "--config", f.toString()))
          .as(c[0])
          .isInstanceOf(ConfigSources.ConfigException.class)
          .hasMessageStartingWith("config file " + f)
          .hasMessageContaining(c[1]);
    }
    assertThatThrownBy(() -> parse(Map.of(PREFIX + "MAX_AGENTS", "many")))
        .isInstanceOf(ConfigSources.ConfigException.class)
        .hasMessage("environment variable " + PREFIX + "MAX_AGENTS: 'many' is not a whole number");
    // Even a value a flag overrides must be valid: the file is wrong either way.
    Path f = file("max-agents: lots\n");
    assertThatThrownBy(() -> parse(Map.of(), "--config", f.toString(), "--max-agents", "3"))
        .hasMessageContaining("'lots' is not a whole number");
  }

  @Test
  void aFileThatCannotBeUsedIsNamed() throws IOException {
    Path missing = dir.resolve("nope.yaml");
    assertThatThrownBy(() -> parse(Map.of(), "--config", missing.toString()))
        .hasMessage("config file " + missing + " does not exist");
    assertThatThrownBy(() -> parse(Map.of(PREFIX + "CONFIG", missing.toString())))
        .hasMessage("config file " + missing + " does not exist");
    Path list = file("- mode: pod\n");
    assertThatThrownBy(() -> parse(Map.of(), "--config", list.toString()))
        .hasMessage(
            "config file "
                + list
                + " must be a mapping of flag names to values (like 'mode: pod'), not a list");
    Path broken = file("mode: pod\n  max-agents: 5\n");
    assertThatThrownBy(() -> parse(Map.of(), "--config", broken.toString()))
        .hasMessageStartingWith("config file " + broken + " is not valid YAML: ")
        .hasMessageContaining("(line 2, column");
    assertThatThrownBy(() -> parse(Map.of(), "--config", dir.toString()))
        .hasMessageStartingWith("config file " + dir + " cannot be read");
    Path empty = file("# nothing set here\n");
    assertThat(parse(Map.of(), "--config", empty.toString()).mode).isEqualTo("agent");
  }

  @Test
  void unknownEnvironmentVariablesAreWarnedAboutNotFatal() {
    Cmd c =
        parse(
            Map.of(
                PREFIX + "MAX_AGENT",
                "5",
                PREFIX + "FROBNICATE",
                "1",
                PREFIX + "SERVICE_HOST",
                "10.43.0.9",
                PREFIX + "SERVICE_PORT_CONNECT",
                "8090",
                PREFIX + "PORT",
                "tcp://10.43.0.9:8090",
                PREFIX + "PORT_8090_TCP_ADDR",
                "10.43.0.9",
                "OTHER_MAX_AGENTS",
                "1"));
    assertThat(c.maxAgents).isEqualTo(10_000);
    assertThat(c.sources.warnings())
        .containsExactly(
            "environment variable "
                + PREFIX
                + "FROBNICATE sets nothing: no flag of test-cmd is called that; ignored",
            "environment variable "
                + PREFIX
                + "MAX_AGENT sets nothing: no flag of test-cmd is called that; did you mean '"
                + PREFIX
                + "MAX_AGENTS'?; ignored");
  }

  @Test
  void theCommandPrintsAConfigErrorWithoutTheUsage() throws IOException {
    Path f = file("max-agent: 5\n");
    StringWriter err = new StringWriter();
    CommandLine cl = commandLine(new Cmd(), Map.of());
    cl.setErr(new PrintWriter(err, true));
    assertThat(cl.execute("--config", f.toString())).isEqualTo(2);
    assertThat(err.toString())
        .startsWith("test-cmd: config file " + f + ", line 1: unknown setting 'max-agent'")
        .contains("docs/configuration.md")
        .doesNotContain("Usage:");
  }

  @Test
  void helpWorksWhateverTheFileHoldsAndNamesTheSources() throws IOException {
    Path f = file("max-agent: 5\n");
    StringWriter out = new StringWriter();
    CommandLine cl = commandLine(new Cmd(), Map.of(PREFIX + "CONFIG", f.toString()));
    cl.setOut(new PrintWriter(out, true));
    assertThat(cl.execute("--help")).isZero();
    assertThat(out.toString())
        .contains("--config")
        .contains(PREFIX + "<FLAG>")
        .contains(PREFIX + "LOG_LEVEL")
        .contains(PREFIX + "CONFIG")
        .contains("--log-format")
        .contains("--log-level");
  }

  @Test
  void subcommandsIgnoreTheSources() throws IOException {
    Path f = file("not: [valid");
    Cmd cmd = new Cmd();
    CommandLine cl =
        commandLine(cmd, Map.of(PREFIX + "CONFIG", f.toString(), PREFIX + "DIR", "/x"));
    assertThat(cl.execute("sub", "--dir", dir.toString())).isZero();
  }

  /** Sizes take their units from the environment and the file, as on the command line. */
  @Test
  void sizesTakeTheirUnitsFromEverySource() throws IOException {
    Path f = file("tcp-receive-buffer: 512KiB\n");
    Cmd c = parse(Map.of(PREFIX + "SPLICE_PIPE_SIZE", "128Ki"), "--config", f.toString());
    assertThat(c.common.splicePipeSize).isEqualTo(128 * 1024);
    assertThat(c.common.tcpReceiveBuffer).isEqualTo(512 * 1024);
    assertThat(parse(Map.of(), "--splice-pipe-size", "1Mi").common.splicePipeSize)
        .isEqualTo(1024 * 1024);
    // A value the flag's converter refuses: the one-line error says where the value came from.
    StringWriter err = new StringWriter();
    CommandLine cl = commandLine(new Cmd(), Map.of(PREFIX + "SPLICE_PIPE_SIZE", "lots"));
    cl.setErr(new PrintWriter(err, true));
    assertThat(cl.execute()).isEqualTo(2);
    assertThat(err.toString())
        .contains("--splice-pipe-size': not a size: 'lots'")
        .contains("(" + PREFIX + "SPLICE_PIPE_SIZE=lots from the environment)");
    // The same mistake on the command line names no other source.
    err.getBuffer().setLength(0);
    cl = commandLine(new Cmd(), Map.of(PREFIX + "SPLICE_PIPE_SIZE", "128Ki"));
    cl.setErr(new PrintWriter(err, true));
    assertThat(cl.execute("--splice-pipe-size", "lots")).isEqualTo(2);
    assertThat(err.toString()).contains("not a size: 'lots'").doesNotContain("environment");
  }

  @Test
  void anErrorAboutAFlagSaysWhereItsValueCameFrom() throws IOException {
    Path f = file("max-agents: 0\n");
    Cmd c = parse(Map.of(PREFIX + "MODE", "nodes"), "--config", f.toString());
    assertThat(c.sources.withOrigins("--max-agents 0 is out of range; --mode too; --max"))
        .isEqualTo(
            "--max-agents 0 is out of range; --mode too; --max ("
                + PREFIX
                + "MODE=nodes from the"
                + " environment) (max-agents: 0 from "
                + f
                + ")");
    Cmd flags = parse(Map.of(), "--max-agents", "0");
    assertThat(flags.sources.withOrigins("--max-agents 0")).isEqualTo("--max-agents 0");
  }

  @Test
  void aRepeatableFlagWithoutSplitIsAProgrammingError() {
    @Command(name = "bad")
    class Bad {
      @Option(names = "--item")
      List<String> items;
    }
    assertThatThrownBy(() -> ConfigSources.install(new CommandLine(new Bad()), PREFIX, Map.of()))
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("--item is repeatable");
  }

  @Test
  void editDistance() {
    assertThat(ConfigSources.distance("max-agent", "max-agents")).isEqualTo(1);
    assertThat(ConfigSources.distance("", "abc")).isEqualTo(3);
    assertThat(ConfigSources.distance("kitten", "sitting")).isEqualTo(3);
  }
}
