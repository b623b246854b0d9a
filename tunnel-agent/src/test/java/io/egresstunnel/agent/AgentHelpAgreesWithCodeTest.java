package io.egresstunnel.agent;

import io.egresstunnel.testing.HelpChecks;
import org.junit.jupiter.api.Test;

/** What {@code tunnel-agent --help} and the protocol document say agrees with the agent's flags. */
class AgentHelpAgreesWithCodeTest {
  @Test
  void theConfigFileExampleKeyIsAFlagOfTheAgent() {
    HelpChecks.configExampleKeyIsAFlag(TunnelAgentMain.commandLine());
  }

  @Test
  void theProtocolDocumentGivesTheKeepaliveDefaultsOfTheCommandLine() throws Exception {
    HelpChecks.protocolDocumentGivesTheKeepaliveDefaults(TunnelAgentMain.commandLine());
  }
}
