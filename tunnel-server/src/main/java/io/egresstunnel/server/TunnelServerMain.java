package io.egresstunnel.server;

import io.egresstunnel.proto.Limits;
import io.egresstunnel.routing.EgressMode;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Command line of tunnel-server. */
@Command(
    name = "tunnel-server",
    mixinStandardHelpOptions = true,
    version = "tunnel-server 0.1.0 (protocol " + Limits.MAX_VERSION + ")",
    description = {
      "Accepts HTTP CONNECT from the kube-apiserver's egress selector and carries each connection"
          + " as a stream over the websocket of the agent on the target's node.",
      "The datapath is not implemented yet in this build: only the command line is."
    })
public final class TunnelServerMain implements Callable<Integer> {

  @Option(
      names = "--mode",
      defaultValue = "agent",
      converter = ModeConverter.class,
      description =
          "Egress selector mode: disabled, agent, pod or cluster (default: ${DEFAULT-VALUE}).")
  EgressMode mode;

  public static void main(String[] args) {
    System.exit(new CommandLine(new TunnelServerMain()).execute(args));
  }

  @Override
  public Integer call() {
    System.err.println("tunnel-server: mode " + mode.flagValue() + " (" + mode.description() + ")");
    System.err.println("tunnel-server: the tunnel datapath is not implemented in this build yet");
    return 2;
  }

  /** Converts the --mode flag with a clear error. */
  static final class ModeConverter implements CommandLine.ITypeConverter<EgressMode> {
    @Override
    public EgressMode convert(String value) {
      return EgressMode.parse(value);
    }
  }
}
