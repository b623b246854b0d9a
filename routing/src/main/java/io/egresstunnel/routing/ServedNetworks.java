package io.egresstunnel.routing;

import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.index.RouteIndex;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The networks that agents declare they serve besides their nodes ({@code --serve-cidr} and {@code
 * --serve-host}, Konnectivity's {@code cidr=} and {@code host=}), for a site network behind one
 * agent. It routes what the node routes leave to the default ({@link Route#DEFAULT}): an address in
 * a served CIDR (the longest prefix wins) or a served host name, on any port, goes {@link
 * Route.ViaNetwork} through the agent that serves it, in every mode but {@code disabled}. When
 * agents claim the same network, the most recent claim wins.
 *
 * <p>Lookups read an immutable index without locking and allocate nothing; writers are serialized
 * (once per agent connect or disconnect).
 */
public final class ServedNetworks implements Router {

  /** What one agent serves. */
  public record Served(List<Cidr> cidrs, List<String> hosts) {
    public Served {
      cidrs = List.copyOf(cidrs);
      hosts = List.copyOf(hosts);
    }

    public boolean isEmpty() {
      return cidrs.isEmpty() && hosts.isEmpty();
    }
  }

  private final EgressMode mode;

  /** By node, oldest claim first; guarded by {@code this}. */
  private final LinkedHashMap<String, Served> byNode = new LinkedHashMap<>();

  private volatile RouteIndex index = RouteIndex.builder().build();
  private volatile Map<String, Served> snapshot = Map.of();

  public ServedNetworks(EgressMode mode) {
    this.mode = mode;
  }

  /** Sets what the agent of {@code node} serves; nothing removes its claims. */
  public synchronized void upsert(String node, Served served) {
    byNode.remove(node);
    if (!served.isEmpty()) {
      byNode.put(node, served);
    }
    publish();
  }

  /** Drops the claims of {@code node}'s agent. */
  public synchronized void remove(String node) {
    if (byNode.remove(node) != null) {
      publish();
    }
  }

  /** Every agent's claims, as of now. */
  public Map<String, Served> all() {
    return snapshot;
  }

  private void publish() {
    RouteIndex.Builder b = RouteIndex.builder();
    byNode.forEach(
        (node, served) -> {
          served.cidrs().forEach(c -> b.servedCidr(c, node));
          served.hosts().forEach(h -> b.servedHost(h, node));
        });
    index = b.build();
    snapshot = Map.copyOf(byNode);
  }

  @Override
  public Route route(String host, int port) {
    return index.route(host, port, mode);
  }
}
