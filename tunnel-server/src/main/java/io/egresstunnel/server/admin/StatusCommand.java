package io.egresstunnel.server.admin;

import io.egresstunnel.proto.status.StatusView;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code tunnel-server status}: a running server's agents and open streams, from its /status. */
@Command(
    name = "status",
    mixinStandardHelpOptions = true,
    description = {
      "Shows a running tunnel-server's agents (node, address, connected since, streams, bytes,"
          + " last heard) and open streams (target, node, age, bytes, state), read from its"
          + " admin listener's /status. With --watch, refreshes like top and adds bytes per"
          + " second per agent and in total; Ctrl-C ends it."
    })
public final class StatusCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Option(
      names = "--admin",
      paramLabel = "HOST:PORT",
      defaultValue = "127.0.0.1:8092",
      description = "The server's --admin-listen address. Default: ${DEFAULT-VALUE}.")
  String admin;

  @Mixin StatusView view = new StatusView();

  @Override
  public Integer call() throws Exception {
    return view.run(
        "tunnel-server status",
        spec.commandLine().getOut(),
        spec.commandLine().getErr(),
        admin,
        ServerStatus::fromJson,
        ServerStatus::toTable);
  }
}
