package io.egresstunnel.server.admin;

import io.egresstunnel.proto.net.AdminHttp;
import io.egresstunnel.proto.net.AdminHttp.Endpoint;
import io.egresstunnel.proto.net.AdminHttp.Response;
import io.egresstunnel.server.TunnelServer;
import io.egresstunnel.server.frontend.ConnectTarget;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.QueryStringDecoder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * What the server's admin listener serves ({@link AdminHttp} serves it, with {@code /metrics}):
 *
 * <ul>
 *   <li>{@code /healthz}: the process is alive;
 *   <li>{@code /readyz}: every readiness check passes (listeners, route source synced, enough
 *       agents, not draining); {@code /readyz?verbose} lists each check and why;
 *   <li>{@code /routez?target=HOST:PORT}: where a CONNECT to that target would go ({@code via
 *       NODE}, {@code direct}, or {@code no-agent NODE});
 *   <li>{@code /status}: agents and open streams as JSON ({@link ServerStatus}).
 * </ul>
 */
public final class AdminEndpoints {
  private final TunnelServer server;

  private AdminEndpoints(TunnelServer server) {
    this.server = server;
  }

  public static Map<String, Endpoint> of(TunnelServer server) {
    AdminEndpoints e = new AdminEndpoints(server);
    return Map.of(
        "/healthz", Endpoint.of(q -> Response.text(HttpResponseStatus.OK, "ok")),
        "/readyz", Endpoint.of(e::readyz),
        "/routez", Endpoint.of(e::routez),
        "/status",
            q ->
                ServerStatus.collect(server)
                    .thenApply(
                        report ->
                            new Response(
                                HttpResponseStatus.OK,
                                "application/json",
                                ServerStatus.toJson(report).getBytes(StandardCharsets.UTF_8))));
  }

  private Response readyz(QueryStringDecoder query) {
    List<TunnelServer.Check> checks = server.readiness();
    boolean ready = checks.stream().allMatch(TunnelServer.Check::ok);
    HttpResponseStatus status =
        ready ? HttpResponseStatus.OK : HttpResponseStatus.SERVICE_UNAVAILABLE;
    if (!query.parameters().containsKey("verbose")) {
      return Response.text(status, ready ? "ok" : "not ready");
    }
    StringBuilder b = new StringBuilder();
    for (TunnelServer.Check c : checks) {
      b.append(c.ok() ? "[+] " : "[-] ")
          .append(c.name())
          .append(c.ok() ? " ok: " : " failed: ")
          .append(c.detail())
          .append('\n');
    }
    b.append(ready ? "readyz check passed" : "readyz check failed");
    return Response.text(status, b.toString());
  }

  private Response routez(QueryStringDecoder query) {
    String target = query.parameters().getOrDefault("target", List.of("")).get(0);
    try {
      ConnectTarget t = ConnectTarget.parse(target);
      return Response.text(
          HttpResponseStatus.OK, describe(server.router().route(t.host(), t.port())));
    } catch (IllegalArgumentException e) {
      return Response.text(
          HttpResponseStatus.BAD_REQUEST,
          "usage: /routez?target=HOST:PORT (" + e.getMessage() + ")");
    }
  }

  private String describe(io.egresstunnel.routing.Route route) {
    if (route instanceof io.egresstunnel.routing.Route.ViaAgent via) {
      if (server.registry().session(via.node()) != null) {
        return "via " + via.node();
      }
      return server.config().routing().fallbackDirect()
          ? "direct (fallback: no-agent " + via.node() + ")"
          : "no-agent " + via.node();
    }
    return "direct";
  }
}
