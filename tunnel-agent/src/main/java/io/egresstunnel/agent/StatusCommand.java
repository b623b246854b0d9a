package io.egresstunnel.agent;

import io.egresstunnel.proto.status.StatusView;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code tunnel-agent status}: a running agent's server connections and streams. */
@Command(
    name = "status",
    mixinStandardHelpOptions = true,
    description = {
      "Shows a running tunnel-agent's connections to servers (server id, address, state, since,"
          + " streams, bytes) and the streams it carries (target, server, age, bytes each way),"
          + " read from its admin listener's /status. With --watch, refreshes like top and adds"
          + " bytes per second; Ctrl-C ends it."
    })
public final class StatusCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Option(
      names = "--admin",
      paramLabel = "HOST:PORT",
      defaultValue = "127.0.0.1:8093",
      description = "The agent's --admin-listen address. Default: ${DEFAULT-VALUE}.")
  String admin;

  @Mixin StatusView view = new StatusView();

  @Override
  public Integer call() throws Exception {
    return view.run(
        "tunnel-agent status",
        spec.commandLine().getOut(),
        spec.commandLine().getErr(),
        admin,
        AgentStatus::fromJson,
        AgentStatus::toTable);
  }
}
