package io.egresstunnel.server.admin;

import io.egresstunnel.proto.config.Units;
import io.egresstunnel.proto.status.AdminClient;
import io.egresstunnel.proto.status.Watch;
import java.io.PrintWriter;
import java.time.Duration;
import java.time.LocalTime;
import java.time.temporal.ChronoUnit;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
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

  @Option(names = "--json", description = "Print the JSON as the server sent it.")
  boolean json;

  @Option(
      names = "--watch",
      description =
          "Refresh every --interval: in place on a terminal, else one snapshot after another"
              + " separated by a blank line.")
  boolean watch;

  @Option(
      names = "--interval",
      paramLabel = "DURATION",
      defaultValue = "2s",
      description = "Time between refreshes with --watch. Default: ${DEFAULT-VALUE}.")
  String interval;

  @Option(
      names = "--count",
      paramLabel = "N",
      defaultValue = "0",
      description = "With --watch, stop after N refreshes; 0 (the default) runs until Ctrl-C.")
  int count;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    AdminClient client = new AdminClient(admin);
    try {
      if (!watch) {
        String body = client.getOk("/status");
        out.print(json ? body : ServerStatus.toTable(ServerStatus.fromJson(body)));
        out.flush();
        return 0;
      }
      if (json) {
        err.println("tunnel-server status: --watch shows tables; use --json without it");
        return 2;
      }
      Duration every;
      try {
        every = Units.parsePositiveDuration("--interval", interval);
      } catch (IllegalArgumentException e) {
        err.println("tunnel-server status: " + e.getMessage());
        return 2;
      }
      ServerStatus.Report[] previous = {null};
      Watch.run(
          out,
          System.console() != null,
          every,
          count,
          elapsed -> {
            ServerStatus.Report now = ServerStatus.fromJson(client.getOk("/status"));
            String frame =
                "every "
                    + interval
                    + ", "
                    + LocalTime.now().truncatedTo(ChronoUnit.SECONDS)
                    + " (Ctrl-C quits)\n"
                    + ServerStatus.toTable(now, previous[0], elapsed);
            previous[0] = now;
            return frame;
          });
      return 0;
    } catch (AdminClient.AdminException e) {
      err.println("tunnel-server status: " + e.getMessage());
      return 1;
    }
  }
}
