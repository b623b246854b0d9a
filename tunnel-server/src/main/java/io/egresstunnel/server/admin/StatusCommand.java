package io.egresstunnel.server.admin;

import io.egresstunnel.proto.config.CommandErrors;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
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
          + " admin listener's /status."
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

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    URI uri;
    try {
      uri = new URI("http://" + admin + "/status");
    } catch (java.net.URISyntaxException e) {
      throw new IllegalArgumentException("--admin " + admin + ": not a HOST:PORT address", e);
    }
    HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    HttpResponse<String> response;
    try {
      response =
          client.send(
              HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(10)).GET().build(),
              HttpResponse.BodyHandlers.ofString());
    } catch (java.io.IOException e) {
      err.println("tunnel-server status: --admin " + admin + ": " + CommandErrors.describe(e));
      return CommandErrors.FAILURE;
    }
    if (response.statusCode() != 200) {
      err.println("tunnel-server status: " + uri + " answered " + response.statusCode());
      return 1;
    }
    out.print(
        json ? response.body() : ServerStatus.toTable(ServerStatus.fromJson(response.body())));
    out.flush();
    return 0;
  }
}
