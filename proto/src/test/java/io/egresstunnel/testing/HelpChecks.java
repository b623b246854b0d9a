package io.egresstunnel.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/** What both commands' {@code --help} and docs/protocol.md must agree on with their flags. */
public final class HelpChecks {
  private HelpChecks() {}

  /** The description of {@code option}, its lines joined. */
  public static String description(CommandLine cl, String option) {
    return String.join(" ", cl.getCommandSpec().findOption(option).description());
  }

  /**
   * The example key in {@code -c/--config}'s help ({@code (key: value)}) is a flag of {@code cl}.
   */
  public static void configExampleKeyIsAFlag(CommandLine cl) {
    Matcher m = Pattern.compile("\\(([a-z-]+): [^)]+\\)").matcher(description(cl, "-c"));
    assertThat(m.find()).as("an example key in the help of -c/--config").isTrue();
    assertThat(cl.getCommandSpec().findOption("--" + m.group(1)))
        .as("--%s, the example key of -c/--config", m.group(1))
        .isNotNull();
  }

  /** docs/protocol.md gives {@code cl}'s defaults of --ping-interval and --ping-timeout. */
  public static void protocolDocumentGivesTheKeepaliveDefaults(CommandLine cl) throws Exception {
    String protocol =
        Files.readString(Path.of("..", "docs", "protocol.md")).replaceAll("\\s+", " ");
    for (String[] flag :
        new String[][] {{"--ping-interval", "ping interval"}, {"--ping-timeout", "ping timeout"}}) {
      OptionSpec option = cl.getCommandSpec().findOption(flag[0]);
      Matcher m = Pattern.compile("\\*" + flag[1] + "\\* \\(default (\\d+) s\\)").matcher(protocol);
      assertThat(m.find()).as(flag[1] + " in docs/protocol.md").isTrue();
      assertThat(m.group(1) + "s").as(flag[0]).isEqualTo(option.defaultValue());
    }
  }
}
