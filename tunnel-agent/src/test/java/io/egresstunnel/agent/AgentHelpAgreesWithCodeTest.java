package io.egresstunnel.agent;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/** What {@code tunnel-agent --help} and the protocol document say agrees with the agent's flags. */
class AgentHelpAgreesWithCodeTest {

  private static String description(CommandLine cl, String option) {
    return String.join(" ", cl.getCommandSpec().findOption(option).description());
  }

  @Test
  void theConfigFileExampleKeyIsAFlagOfTheAgent() {
    CommandLine cl = TunnelAgentMain.commandLine();
    Matcher m = Pattern.compile("\\(([a-z-]+): [^)]+\\)").matcher(description(cl, "-c"));
    assertThat(m.find()).isTrue();
    assertThat(cl.getCommandSpec().findOption("--" + m.group(1)))
        .as("--%s, the example key of -c/--config", m.group(1))
        .isNotNull();
  }

  @Test
  void theProtocolDocumentGivesTheKeepaliveDefaultsOfTheCommandLine() throws Exception {
    String protocol =
        Files.readString(Path.of("..", "docs", "protocol.md")).replaceAll("\\s+", " ");
    CommandLine cl = TunnelAgentMain.commandLine();
    for (String[] flag :
        new String[][] {{"--ping-interval", "ping interval"}, {"--ping-timeout", "ping timeout"}}) {
      OptionSpec option = cl.getCommandSpec().findOption(flag[0]);
      Matcher m = Pattern.compile("\\*" + flag[1] + "\\* \\(default (\\d+) s\\)").matcher(protocol);
      assertThat(m.find()).as(flag[1] + " in docs/protocol.md").isTrue();
      assertThat(m.group(1) + "s").as(flag[0]).isEqualTo(option.defaultValue());
    }
  }
}
