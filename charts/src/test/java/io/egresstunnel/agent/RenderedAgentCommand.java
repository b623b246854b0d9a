package io.egresstunnel.agent;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/**
 * tunnel-agent's command line exactly as its entry point builds it, for the chart checks: the flags
 * it knows, and the configuration a rendered container (its args, its environment and the config
 * file they name) gives it.
 */
public final class RenderedAgentCommand {
  private RenderedAgentCommand() {}

  /** The config-file keys tunnel-agent knows: its flags' names without dashes. */
  public static Set<String> settingKeys() {
    Set<String> keys = new TreeSet<>();
    for (OptionSpec o :
        TunnelAgentMain.commandLine(new TunnelAgentMain(), Map.of()).getCommandSpec().options()) {
      if (!o.usageHelp() && !o.versionHelp()) {
        keys.add(o.longestName().replaceFirst("^-+", ""));
      }
    }
    return keys;
  }

  /** The keys whose values are files or directories (their option's type is a Path). */
  public static Set<String> pathKeys() {
    Set<String> keys = new TreeSet<>();
    for (OptionSpec o :
        TunnelAgentMain.commandLine(new TunnelAgentMain(), Map.of()).getCommandSpec().options()) {
      if (o.type() == java.nio.file.Path.class) {
        keys.add(o.longestName().replaceFirst("^-+", ""));
      }
    }
    return keys;
  }

  /** What parsing {@code args} with {@code env} gives: the configuration and the warnings. */
  public record Parsed(AgentConfig config, List<String> warnings) {}

  /**
   * Parses {@code args} as {@code tunnel-agent} does and builds its configuration; the picocli or
   * IllegalArgumentException says what is wrong.
   */
  public static Parsed parse(List<String> args, Map<String, String> env) {
    TunnelAgentMain main = new TunnelAgentMain();
    CommandLine cl = TunnelAgentMain.commandLine(main, env);
    cl.parseArgs(args.toArray(String[]::new));
    AgentConfig config = main.toConfig();
    return new Parsed(config, main.sources.warnings());
  }
}
