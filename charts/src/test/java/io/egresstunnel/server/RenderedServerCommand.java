package io.egresstunnel.server;

import java.util.List;
import java.util.Map;
import picocli.CommandLine;

/**
 * tunnel-server's command line exactly as its entry point builds it, for the chart checks: the
 * flags it knows, and the configuration a rendered container (its args, its environment and the
 * config file they name) gives it.
 */
public final class RenderedServerCommand {
  private RenderedServerCommand() {}

  /** The command line exactly as the entry point builds it, with an empty environment. */
  public static CommandLine commandLine() {
    return TunnelServerMain.commandLine(new TunnelServerMain(), Map.of());
  }

  /** What parsing {@code args} with {@code env} gives: the configuration and the warnings. */
  public record Parsed(ServerConfig config, List<String> warnings) {}

  /**
   * Parses {@code args} as {@code tunnel-server} does and builds its configuration; the picocli or
   * IllegalArgumentException says what is wrong.
   */
  public static Parsed parse(List<String> args, Map<String, String> env) throws Exception {
    TunnelServerMain main = new TunnelServerMain();
    CommandLine cl = TunnelServerMain.commandLine(main, env);
    cl.parseArgs(args.toArray(String[]::new));
    ServerConfig config = main.toConfig();
    return new Parsed(config, main.sources.warnings());
  }
}
