package io.egresstunnel.server.admin;

import io.egresstunnel.proto.net.AdminHttp;
import io.egresstunnel.proto.net.AdminHttp.Endpoint;
import io.egresstunnel.proto.net.AdminHttp.Response;
import io.egresstunnel.server.TargetRoutes;
import io.egresstunnel.server.TunnelServer;
import io.egresstunnel.server.agents.AgentRegistry;
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
          HttpResponseStatus.OK, describe(server.routes().decide(t.host(), t.port())));
    } catch (IllegalArgumentException e) {
      return Response.text(
          HttpResponseStatus.BAD_REQUEST,
          "usage: /routez?target=HOST:PORT (" + e.getMessage() + ")");
    }
  }

  /**
   * One line: {@code via NODE}, {@code no-agent NODE}, {@code direct ...}, {@code rejected ...}, or
   * for the default route the agents eligible and the one a dial would try first.
   */
  private String describe(TargetRoutes.Decision d) {
    return switch (d.kind()) {
      case NODE, NETWORK -> {
        String why = d.kind() == TargetRoutes.Kind.NETWORK ? " (a network it serves)" : "";
        if (server.registry().session(d.node()) != null) {
          yield "via " + d.node() + why;
        }
        yield server.config().routing().fallbackDirect()
            ? "direct (fallback: no-agent " + d.node() + ")" + why
            : "no-agent " + d.node() + why;
      }
      case DIRECT ->
          d.reason().startsWith("no node owns it") ? "direct (" + d.reason() + ")" : "direct";
      case REJECTED -> "rejected (" + d.reason() + ")";
      case DEFAULT_ROUTE ->
          d.agents().isEmpty()
              ? "no-agent default route (" + d.reason() + ")"
              : "via "
                  + AgentRegistry.nodeOf(d.agents().get(0))
                  + " (default route: "
                  + d.eligible()
                  + " eligible agent(s), offering: "
                  + server.registry().defaultRouteSessions().stream()
                      .map(AgentRegistry::nodeOf)
                      .sorted()
                      .distinct()
                      .collect(java.util.stream.Collectors.joining(", "))
                  + ")";
    };
  }
}
