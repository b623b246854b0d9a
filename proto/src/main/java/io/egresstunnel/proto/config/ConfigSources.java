package io.egresstunnel.proto.config;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParseResult;

/**
 * Where a command's settings come from besides its flags: environment variables and a YAML config
 * file, as K3s does it. A flag on the command line wins over the environment, the environment over
 * the file, the file over the built-in default. docs/configuration.md is the user's side of this.
 *
 * <ul>
 *   <li>Environment: the prefix, then the flag's name in capitals with underscores: {@code
 *       --max-agents} is {@code EGRESS_TUNNEL_SERVER_MAX_AGENTS}. A name under the prefix that is
 *       no flag's is warned about and ignored (Kubernetes service links, {@code
 *       PREFIX_SERVICE_HOST} and the like, silently): the environment is shared, and a pod should
 *       not crash-loop over a stray variable.
 *   <li>File: {@code --config FILE} or {@code PREFIX_CONFIG}; a YAML mapping whose keys are the
 *       flag names without dashes. Any error in it, even in a key a flag overrides, stops the
 *       command: an unknown key (with the closest flag's name), a value of the wrong type, a file
 *       that is missing, unreadable or no mapping.
 *   <li>Lists (repeatable flags) take YAML sequences, or comma-separated strings in either source.
 * </ul>
 *
 * <p>It is picocli's default value provider of the command, so picocli applies the command line
 * first and asks here only for the options it did not see. A setting given differently by two
 * sources is a conflict: {@link #warnings()} names both and the winner, and {@link #logSources()}
 * logs them. Subcommands (tunnel-server certs) are left alone.
 */
public final class ConfigSources implements CommandLine.IDefaultValueProvider {
  private static final org.slf4j.Logger log =
      org.slf4j.LoggerFactory.getLogger(ConfigSources.class);

  /** The flag that names the config file. */
  public static final String CONFIG_OPTION = "--config";

  /** Variables Kubernetes sets for a Service named like the prefix: not settings. */
  private static final Pattern SERVICE_LINK =
      Pattern.compile("SERVICE_HOST|SERVICE_PORT(_\\w+)?|PORT(_\\d+_(TCP|UDP|SCTP)(_\\w+)?)?");

  /** Where a value came from, strongest first. */
  enum Origin {
    COMMAND_LINE,
    ENVIRONMENT,
    FILE
  }

  /** One source's value for an option, normalized for comparison, and how to show it. */
  record Given(Origin origin, List<String> values, String display) {}

  /**
   * A problem with a setting from the environment or the config file, naming the source; {@link
   * CommandErrors} prints it with a pointer to the docs, not the usage.
   */
  public static final class ConfigException extends CommandLine.ParameterException {
    private static final long serialVersionUID = 1L;

    ConfigException(CommandLine commandLine, String message) {
      super(commandLine, message);
    }
  }

  private final CommandLine commandLine;
  private final CommandSpec spec;
  private final String envPrefix;
  private final Map<String, String> env;

  /** What was read for the config file {@link #loadedFor}; null before the first load. */
  private Loaded loaded;

  private record Loaded(
      Path loadedFor,
      ConfigFile file,
      Map<OptionSpec, Given> fromEnv,
      Map<OptionSpec, Given> fromFile,
      List<String> envWarnings) {}

  private ConfigSources(CommandLine commandLine, String envPrefix, Map<String, String> env) {
    this.commandLine = commandLine;
    this.spec = commandLine.getCommandSpec();
    this.envPrefix = envPrefix;
    this.env = Map.copyOf(env);
  }

  /**
   * Makes the environment ({@code env}, {@code System.getenv()} in production) and the config file
   * sources of {@code commandLine}'s own options, and says so at the end of its help.
   *
   * @param envPrefix the environment variables' prefix, {@code EGRESS_TUNNEL_SERVER_}
   */
  public static ConfigSources install(
      CommandLine commandLine, String envPrefix, Map<String, String> env) {
    ConfigSources sources = new ConfigSources(commandLine, envPrefix, env);
    for (OptionSpec option : sources.settings()) {
      if (option.isMultiValue() && option.splitRegex().isEmpty()) {
        throw new IllegalStateException(
            option.longestName()
                + " is repeatable: give it split = \",\" so that the environment"
                + " and the config file can set it too");
      }
    }
    sources.spec.defaultValueProvider(sources);
    List<String> footer = new ArrayList<>(List.of(sources.spec.usageMessage().footer()));
    footer.add("");
    footer.add(
        "Every flag can also be set in the environment, as "
            + envPrefix
            + "<FLAG> (--log-level is "
            + envPrefix
            + "LOG_LEVEL), or in the YAML file named by --config (or "
            + envPrefix
            + "CONFIG) with the flag's name as its key (log-level: debug). A flag wins over the"
            + " environment, the environment over the file; a setting given differently by two of"
            + " them is logged as a warning. Lists take YAML lists or comma-separated values."
            + " docs/configuration.md has the details.");
    sources.spec.usageMessage().footer(footer.toArray(new String[0]));
    return sources;
  }

  /** The environment variable that sets {@code option}. */
  public String envName(OptionSpec option) {
    return envPrefix + key(option).toUpperCase(Locale.ROOT).replace('-', '_');
  }

  /** The config file key of {@code option}: its name without dashes. */
  public static String key(OptionSpec option) {
    return option.longestName().replaceFirst("^-+", "");
  }

  // ---- picocli's side ------------------------------------------------------------------------

  @Override
  public String defaultValue(ArgSpec arg) {
    if (!(arg instanceof OptionSpec option)
        || !spec.options().contains(option)
        || !isSetting(option)
        || subcommandInvoked()) {
      return null;
    }
    Loaded sources;
    try {
      sources = load();
    } catch (IllegalArgumentException e) {
      if (helpRequested()) {
        return null; // --help and --version work whatever the file holds
      }
      throw new ConfigException(commandLine, e.getMessage());
    }
    Given given = sources.fromEnv().get(option);
    if (given == null) {
      given = sources.fromFile().get(option);
    }
    return given == null ? null : String.join(",", given.values());
  }

  // ---- what the command reports --------------------------------------------------------------

  /**
   * After parsing: one line per setting that two sources give differently, naming the winner and
   * the loser ({@code --mode=pod from the command line overrides mode: agent from
   * /etc/egress-tunnel/server.yaml}), then the environment variables that set nothing.
   */
  public List<String> warnings() {
    if (loaded == null) {
      return List.of();
    }
    List<String> lines = new ArrayList<>();
    ParseResult parsed = commandLine.getParseResult();
    for (OptionSpec option : settings()) {
      List<Given> given = new ArrayList<>(3);
      if (parsed != null && parsed.hasMatchedOption(option)) {
        given.add(fromCommandLine(option));
      }
      add(given, loaded.fromEnv().get(option));
      add(given, loaded.fromFile().get(option));
      for (int i = 1; i < given.size(); i++) {
        if (!given.get(0).values().equals(given.get(i).values())) {
          lines.add(given.get(0).display() + " overrides " + given.get(i).display());
        }
      }
    }
    lines.addAll(loaded.envWarnings());
    return lines;
  }

  /** Logs which sources were used (INFO) and {@link #warnings()} (WARN, one line each). */
  public void logSources() {
    if (loaded == null) {
      return;
    }
    if (loaded.file() != null || !loaded.fromEnv().isEmpty()) {
      log.info(
          "settings: {} from the environment{}",
          loaded.fromEnv().size(),
          loaded.file() == null
              ? ""
              : ", " + loaded.fromFile().size() + " from " + loaded.file().path());
    }
    for (String line : warnings()) {
      log.warn(line);
    }
  }

  /**
   * {@code message} (an error about flags) followed by where each flag it names got its value, when
   * that was not the command line: {@code (max-agents: 0 from /etc/x.yaml)}.
   */
  public String withOrigins(String message) {
    return withOrigins(message, List.of());
  }

  /**
   * As {@link #withOrigins(String)}, for an error picocli found while parsing {@code args}, before
   * there is a parse result: a flag among {@code args} got its value from the command line.
   */
  public String withOrigins(String message, List<String> args) {
    if (loaded == null || message == null) {
      return message;
    }
    StringBuilder out = new StringBuilder(message);
    ParseResult parsed = commandLine.getParseResult();
    for (OptionSpec option : settings()) {
      if ((parsed != null && parsed.hasMatchedOption(option)) || onCommandLine(option, args)) {
        continue;
      }
      Given given = loaded.fromEnv().get(option);
      if (given == null) {
        given = loaded.fromFile().get(option);
      }
      if (given != null
          && Pattern.compile(Pattern.quote(option.longestName()) + "(?![\\w-])")
              .matcher(message)
              .find()) {
        out.append(" (").append(given.display()).append(')');
      }
    }
    return out.toString();
  }

  private static boolean onCommandLine(OptionSpec option, List<String> args) {
    for (String arg : args) {
      for (String name : option.names()) {
        if (arg.equals(name) || arg.startsWith(name + "=")) {
          return true;
        }
      }
    }
    return false;
  }

  // ---- reading the sources -------------------------------------------------------------------

  private Loaded load() {
    Path path = configPath();
    if (loaded != null && Objects.equals(loaded.loadedFor(), path)) {
      return loaded;
    }
    Map<String, OptionSpec> byEnv = new HashMap<>();
    Map<String, OptionSpec> byKey = new TreeMap<>();
    for (OptionSpec option : settings()) {
      byEnv.put(envName(option), option);
      byKey.put(key(option), option);
    }
    Map<OptionSpec, Given> fromEnv = new LinkedHashMap<>();
    List<String> envWarnings = new ArrayList<>();
    for (Map.Entry<String, String> e : new TreeMap<>(env).entrySet()) {
      String name = e.getKey();
      if (!name.startsWith(envPrefix)) {
        continue;
      }
      OptionSpec option = byEnv.get(name);
      if (option == null) {
        if (!SERVICE_LINK.matcher(name.substring(envPrefix.length())).matches()) {
          envWarnings.add(
              "environment variable "
                  + name
                  + " sets nothing: no flag of "
                  + commandLine.getCommandName()
                  + " is called that"
                  + suggestion(name.substring(envPrefix.length()), byKey.keySet(), envPrefix)
                  + "; ignored");
        }
        continue;
      }
      String raw = e.getValue();
      List<String> values =
          check(
              option,
              option.isMultiValue() ? split(raw) : List.of(raw),
              "environment variable " + name + ": ");
      fromEnv.put(
          option,
          new Given(Origin.ENVIRONMENT, values, name + "=" + raw + " from the environment"));
    }
    ConfigFile file = path == null ? null : ConfigFile.read(path);
    Map<OptionSpec, Given> fromFile = new LinkedHashMap<>();
    if (file != null) {
      for (ConfigFile.Entry entry : file.entries().values()) {
        String where = ConfigFile.where(path, entry.line());
        OptionSpec option = byKey.get(entry.key());
        if (option == null) {
          throw new IllegalArgumentException(
              where
                  + "unknown setting '"
                  + entry.key()
                  + "'"
                  + suggestion(entry.key(), byKey.keySet(), null));
        }
        if (option.longestName().equals(CONFIG_OPTION)) {
          throw new IllegalArgumentException(
              where
                  + "a config file cannot name another one (config is a flag or "
                  + envPrefix
                  + "CONFIG only)");
        }
        if (entry.sequence() && !option.isMultiValue()) {
          throw new IllegalArgumentException(where + entry.key() + " takes one value, not a list");
        }
        List<String> values = new ArrayList<>();
        for (String v : entry.values()) {
          values.addAll(option.isMultiValue() ? split(v) : List.of(v));
        }
        fromFile.put(
            option,
            new Given(
                Origin.FILE,
                check(option, values, where + entry.key() + ": "),
                entry.display() + " from " + path));
      }
    }
    loaded = new Loaded(path, file, fromEnv, fromFile, envWarnings);
    return loaded;
  }

  /** The config file: {@code --config} as given, else its environment variable, else none. */
  private Path configPath() {
    OptionSpec option = spec.findOption(CONFIG_OPTION);
    if (option == null) {
      return null;
    }
    List<String> given = option.originalStringValues();
    String value = given.isEmpty() ? env.get(envName(option)) : given.get(given.size() - 1);
    return value == null || value.isBlank() ? null : Path.of(value);
  }

  private Given fromCommandLine(OptionSpec option) {
    List<String> values = new ArrayList<>();
    for (String v : option.originalStringValues()) {
      values.addAll(option.isMultiValue() ? split(v) : List.of(v));
    }
    List<String> normalized;
    try {
      normalized = check(option, values, "");
    } catch (IllegalArgumentException e) {
      normalized = values; // picocli accepted it; compare it as given
    }
    return new Given(
        Origin.COMMAND_LINE,
        normalized,
        option.longestName() + "=" + String.join(",", values) + " from the command line");
  }

  /**
   * Checks {@code values} against the option's type and returns them normalized, so that {@code 05}
   * and {@code 5}, or {@code TRUE} and {@code true}, are the same setting.
   */
  private static List<String> check(OptionSpec option, List<String> values, String where) {
    if (!option.isMultiValue() && values.size() != 1) {
      throw new IllegalArgumentException(where + "takes one value, not " + values.size());
    }
    Class<?> type =
        option.isMultiValue() && option.auxiliaryTypes().length > 0
            ? option.auxiliaryTypes()[0]
            : option.type();
    // An option with its own converter (sizes such as 256Ki on an int) is checked by it, as on
    // the command line.
    boolean converted = option.converters() != null && option.converters().length > 0;
    List<String> out = new ArrayList<>(values.size());
    for (String value : values) {
      out.add(converted && !type.isEnum() ? value.strip() : normalize(type, value, where));
    }
    return List.copyOf(out);
  }

  private static String normalize(Class<?> type, String value, String where) {
    String v = value.strip();
    if (type == int.class || type == Integer.class || type == long.class || type == Long.class) {
      try {
        long n = Long.parseLong(v);
        if ((type == int.class || type == Integer.class) && n != (int) n) {
          throw new NumberFormatException();
        }
        return Long.toString(n);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(where + "'" + value + "' is not a whole number");
      }
    }
    if (type == boolean.class || type == Boolean.class) {
      if (v.equalsIgnoreCase("true") || v.equalsIgnoreCase("false")) {
        return v.toLowerCase(Locale.ROOT);
      }
      throw new IllegalArgumentException(where + "'" + value + "' is not true or false");
    }
    if (type.isEnum()) {
      List<String> names = new ArrayList<>();
      for (Object constant : type.getEnumConstants()) {
        String name = ((Enum<?>) constant).name();
        if (name.equalsIgnoreCase(v)) {
          return name.toLowerCase(Locale.ROOT);
        }
        names.add(name.toLowerCase(Locale.ROOT));
      }
      throw new IllegalArgumentException(
          where + "'" + value + "' is not one of " + String.join(", ", names));
    }
    return value;
  }

  private static List<String> split(String value) {
    List<String> out = new ArrayList<>();
    for (String part : value.split(",", -1)) {
      if (!part.isBlank()) {
        out.add(part.strip());
      }
    }
    return out;
  }

  private static void add(List<Given> list, Given given) {
    if (given != null) {
      list.add(given);
    }
  }

  /** The options the sources may set: all of this command's but --help and --version. */
  private List<OptionSpec> settings() {
    List<OptionSpec> out = new ArrayList<>();
    for (OptionSpec option : spec.options()) {
      if (isSetting(option)) {
        out.add(option);
      }
    }
    return out;
  }

  private static boolean isSetting(OptionSpec option) {
    return !option.usageHelp() && !option.versionHelp();
  }

  private boolean helpRequested() {
    for (OptionSpec option : spec.options()) {
      if ((option.usageHelp() || option.versionHelp())
          && !option.originalStringValues().isEmpty()) {
        return true;
      }
    }
    return false;
  }

  /** A subcommand has its own flags and ignores these sources. */
  private boolean subcommandInvoked() {
    for (CommandLine sub : spec.subcommands().values()) {
      if (sub.getParseResult() != null) {
        return true;
      }
    }
    return false;
  }

  /**
   * {@code "; did you mean 'X'?"} for the key among {@code candidates} closest to {@code name}, or
   * nothing; with {@code envPrefix}, {@code name} is an environment variable's tail and so is X.
   */
  static String suggestion(String name, Collection<String> candidates, String envPrefix) {
    String wanted = name.replaceFirst("^-+", "").toLowerCase(Locale.ROOT).replace('_', '-');
    String best = null;
    int bestDistance = Integer.MAX_VALUE;
    for (String candidate : candidates) {
      int d = distance(wanted, candidate.toLowerCase(Locale.ROOT).replace('_', '-'));
      if (d < bestDistance) {
        best = candidate;
        bestDistance = d;
      }
    }
    int allowed = Math.max(2, wanted.length() / 4);
    if (best == null || bestDistance > allowed) {
      return "";
    }
    String shown =
        envPrefix == null ? best : envPrefix + best.toUpperCase(Locale.ROOT).replace('-', '_');
    return "; did you mean '" + shown + "'?";
  }

  /** Levenshtein distance. */
  static int distance(String a, String b) {
    int[] previous = new int[b.length() + 1];
    int[] current = new int[b.length() + 1];
    for (int j = 0; j <= b.length(); j++) {
      previous[j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      current[0] = i;
      for (int j = 1; j <= b.length(); j++) {
        int substitute = previous[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
        current[j] = Math.min(substitute, Math.min(previous[j], current[j - 1]) + 1);
      }
      int[] t = previous;
      previous = current;
      current = t;
    }
    return previous[b.length()];
  }
}
