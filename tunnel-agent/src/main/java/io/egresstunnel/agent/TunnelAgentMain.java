package io.egresstunnel.agent;

import io.egresstunnel.proto.Limits;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Command line of tunnel-agent. */
@Command(
    name = "tunnel-agent",
    mixinStandardHelpOptions = true,
    version =
        "tunnel-agent 0.1.0 (protocol " + Limits.MIN_VERSION + ".." + Limits.MAX_VERSION + ")",
    description = {
      "Runs on every node: keeps a websocket to each tunnel-server, dials the targets the servers"
          + " ask for when its node's policy allows them, and splices bytes both ways.",
      "The datapath is not implemented yet in this build: only the command line is."
    })
public final class TunnelAgentMain implements Callable<Integer> {

  public static void main(String[] args) {
    System.exit(new CommandLine(new TunnelAgentMain()).execute(args));
  }

  @Override
  public Integer call() {
    System.err.println("tunnel-agent: the tunnel datapath is not implemented in this build yet");
    return 2;
  }
}
