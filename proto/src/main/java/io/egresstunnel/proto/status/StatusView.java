package io.egresstunnel.proto.status;

import io.egresstunnel.proto.config.Units;
import java.io.PrintWriter;
import java.time.Duration;
import java.time.LocalTime;
import java.time.temporal.ChronoUnit;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine.Option;

/**
 * The options and the run of a {@code status} subcommand, shared by both commands (a picocli
 * mixin): read {@code /status} from an admin listener, print it as tables (or the JSON), once or
 * with {@code --watch} refreshed every {@code --interval}.
 */
public final class StatusView {
  /** How one command reads its {@code /status} answer. */
  @FunctionalInterface
  public interface Parser<R> {
    R parse(String json) throws Exception;
  }

  /**
   * How one command shows a report as tables: {@code now}, and with {@code previous} (null on the
   * first) taken {@code elapsedNanos} before, also what changed per second.
   */
  @FunctionalInterface
  public interface Tables<R> {
    String table(R now, R previous, long elapsedNanos);
  }

  @Option(names = "--json", description = "Print the JSON as the admin listener sent it.")
  boolean json;

  @Option(
      names = "--watch",
      description =
          "Refresh every --interval, with bytes per second: in place on a terminal, else one"
              + " snapshot after another separated by a blank line. Ctrl-C ends it.")
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

  /**
   * Shows {@code admin}'s {@code /status}; returns the exit status: 0, 1 when the listener cannot
   * be read, 2 for a usage error. {@code command} names the command in error messages.
   */
  public <R> int run(
      String command,
      PrintWriter out,
      PrintWriter err,
      String admin,
      Parser<R> parser,
      Tables<R> tables)
      throws Exception {
    AdminClient client = new AdminClient(admin);
    try {
      if (!watch) {
        String body = client.getOk("/status");
        out.print(json ? body : tables.table(parser.parse(body), null, 0));
        out.flush();
        return 0;
      }
      if (json) {
        err.println(command + ": --watch shows tables; use --json without it");
        return 2;
      }
      Duration every;
      try {
        every = Units.parsePositiveDuration("--interval", interval);
      } catch (IllegalArgumentException e) {
        err.println(command + ": " + e.getMessage());
        return 2;
      }
      AtomicReference<R> previous = new AtomicReference<>();
      Watch.run(
          out,
          System.console() != null,
          every,
          count,
          elapsed -> {
            R now = parser.parse(client.getOk("/status"));
            R before = previous.getAndSet(now);
            return "every "
                + interval
                + ", "
                + LocalTime.now().truncatedTo(ChronoUnit.SECONDS)
                + " (Ctrl-C quits)\n"
                + tables.table(now, before, elapsed);
          });
      return 0;
    } catch (AdminClient.AdminException e) {
      err.println(command + ": " + e.getMessage());
      return 1;
    }
  }
}
