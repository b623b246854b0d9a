package io.egresstunnel.charts;

import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Predicate;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/** The config-file keys a command knows: its flags' names without dashes. */
final class CommandKeys {
  private CommandKeys() {}

  /** Every setting of {@code cl} (not --help or --version). */
  static Set<String> settings(CommandLine cl) {
    return keys(cl, o -> !o.usageHelp() && !o.versionHelp());
  }

  /** The settings whose values are files or directories (their option's type is a Path). */
  static Set<String> paths(CommandLine cl) {
    return keys(cl, o -> o.type() == Path.class);
  }

  private static Set<String> keys(CommandLine cl, Predicate<OptionSpec> which) {
    Set<String> keys = new TreeSet<>();
    for (OptionSpec o : cl.getCommandSpec().options()) {
      if (which.test(o)) {
        keys.add(o.longestName().replaceFirst("^-+", ""));
      }
    }
    return keys;
  }
}
