package io.egresstunnel.routing;

import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.index.RouteIndex;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeAddress;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodIP;
import io.fabric8.kubernetes.api.model.discovery.v1.Endpoint;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSlice;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.informers.ResourceEventHandler;
import io.fabric8.kubernetes.client.informers.SharedIndexInformer;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Routes from the Kubernetes API. The informers it runs depend on the mode: {@code agent} and
 * {@code pod} watch Nodes; {@code cluster} watches Nodes, Pods and EndpointSlices
 * (discovery.k8s.io/v1); {@code disabled} watches nothing.
 *
 * <ul>
 *   <li>Nodes: every address (InternalIP, ExternalIP, either family), the name and every Hostname,
 *       InternalDNS and ExternalDNS address as further names, the kubelet port ({@code
 *       status.daemonEndpoints.kubeletEndpoint.Port}, 10250 if unset) and {@code spec.podCIDRs}.
 *       The CIDRs are used in {@code pod} mode only: cluster mode exists for CNIs that ignore them.
 *   <li>Pods: {@code status.podIPs} → {@code spec.nodeName}. hostNetwork pods and pods not yet
 *       scheduled are skipped.
 *   <li>EndpointSlices: every address of every endpoint that names its node.
 * </ul>
 *
 * State is kept per object UID, so a delete removes only what that object claimed: an IP that a CNI
 * has already reused for a new pod stays with the new pod. When two objects claim the same IP, the
 * one updated last wins. Changes are folded into a new {@link RouteIndex} on one thread, at most
 * every {@code rebuildDelay}, so that a burst (an initial list of 100,000 pods) costs a few
 * rebuilds, not one per event. Handlers are registered before any informer starts. A dropped watch
 * is relisted by fabric8, and the state converges through the same handlers.
 */
public final class KubernetesRouteSource implements Router, AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(KubernetesRouteSource.class);
  private static final int DEFAULT_KUBELET_PORT = 10250;

  private final KubernetesClient client;
  private final EgressMode mode;
  private final String ownNode;
  private final long rebuildDelayMillis;
  private final ScheduledExecutorService rebuilder;
  private final List<SharedIndexInformer<?>> informers = new ArrayList<>();

  // Guarded by this. LinkedHashMaps keep update order: later updates win conflicting claims.
  private final LinkedHashMap<String, NodeInfo> nodes = new LinkedHashMap<>();
  private final Map<String, List<String>> nodeAliases = new java.util.HashMap<>();
  private final LinkedHashMap<String, Claims> pods = new LinkedHashMap<>();
  private final LinkedHashMap<String, Claims> slices = new LinkedHashMap<>();
  private boolean rebuildScheduled;

  private volatile RouteIndex index = RouteIndex.builder().build();
  private volatile Map<String, NodeInfo> nodesByName = Map.of();
  private volatile boolean indexedAfterSync;

  /** IPs that one object places on nodes. */
  private record Claims(List<InetAddress> ips, List<String> nodes) {}

  /**
   * @param ownNode the node the server itself runs on, or null: its targets are dialled directly
   * @param rebuildDelay the longest a change waits before it is routable
   */
  public KubernetesRouteSource(
      KubernetesClient client, EgressMode mode, String ownNode, java.time.Duration rebuildDelay) {
    this.client = client;
    this.mode = mode;
    this.ownNode = ownNode;
    this.rebuildDelayMillis = Math.max(1, rebuildDelay.toMillis());
    this.rebuilder =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "route-index");
              t.setDaemon(true);
              return t;
            });
  }

  /** Registers the handlers, then starts the informers the mode needs. Returns at once. */
  public KubernetesRouteSource start() {
    if (mode == EgressMode.DISABLED) {
      indexedAfterSync = true;
      return this;
    }
    SharedIndexInformer<Node> nodeInformer = client.nodes().runnableInformer(0);
    nodeInformer.addEventHandler(handler(this::putNode, this::removeNode));
    informers.add(nodeInformer);
    if (mode == EgressMode.CLUSTER) {
      SharedIndexInformer<Pod> podInformer = client.pods().inAnyNamespace().runnableInformer(0);
      podInformer.addEventHandler(handler(this::putPod, (uid, pod) -> remove(pods, uid)));
      informers.add(podInformer);
      SharedIndexInformer<EndpointSlice> sliceInformer =
          client.discovery().v1().endpointSlices().inAnyNamespace().runnableInformer(0);
      sliceInformer.addEventHandler(handler(this::putSlice, (uid, s) -> remove(slices, uid)));
      informers.add(sliceInformer);
    }
    for (SharedIndexInformer<?> informer : informers) {
      informer.start();
    }
    scheduleRebuild(); // marks the index current once every informer has synced
    return this;
  }

  /** True once every informer has synced and an index built after that is in place. */
  public boolean isSynced() {
    return indexedAfterSync;
  }

  /** A line for readiness checks: what is synced and how much is indexed. */
  public String describe() {
    return (isSynced() ? "synced" : "syncing")
        + ": "
        + nodesByName.size()
        + " node(s), "
        + index.podEntries()
        + " pod/endpoint IP(s), mode "
        + mode.flagValue();
  }

  public Optional<NodeInfo> node(String name) {
    return Optional.ofNullable(nodesByName.get(name));
  }

  @Override
  public Route route(String host, int port) {
    Route r = index.route(host, port, mode);
    if (ownNode != null && r instanceof Route.ViaAgent via && via.node().equals(ownNode)) {
      return Route.DIRECT; // the server's own node needs no tunnel
    }
    return r;
  }

  // ---- events --------------------------------------------------------------------------------

  private <T extends HasMetadata> ResourceEventHandler<T> handler(
      BiConsumer<String, T> put, BiConsumer<String, T> delete) {
    return new ResourceEventHandler<>() {
      @Override
      public void onAdd(T obj) {
        put.accept(key(obj), obj);
      }

      @Override
      public void onUpdate(T oldObj, T newObj) {
        put.accept(key(newObj), newObj);
      }

      @Override
      public void onDelete(T obj, boolean finalStateUnknown) {
        delete.accept(key(obj), obj);
      }
    };
  }

  /**
   * An object's identity for claims: its UID, which a recreated object with the same name does not
   * share (namespace/name only where a server sets no UID, as test servers may not).
   */
  public static String key(HasMetadata obj) {
    String uid = obj.getMetadata().getUid();
    return uid != null ? uid : obj.getMetadata().getNamespace() + "/" + obj.getMetadata().getName();
  }

  private synchronized void putNode(String uid, Node node) {
    String name = node.getMetadata().getName();
    List<InetAddress> addresses = new ArrayList<>();
    List<String> aliases = new ArrayList<>();
    if (node.getStatus() != null && node.getStatus().getAddresses() != null) {
      for (NodeAddress a : node.getStatus().getAddresses()) {
        InetAddress ip = literal(a.getAddress());
        if (ip != null) {
          if (!addresses.contains(ip)) {
            addresses.add(ip); // InternalIP and ExternalIP, either family
          }
        } else if (a.getAddress() != null && !a.getAddress().equalsIgnoreCase(name)) {
          aliases.add(a.getAddress()); // Hostname, InternalDNS, ExternalDNS
        }
      }
    }
    nodeAliases.put(name, aliases);
    List<Cidr> cidrs = new ArrayList<>();
    if (mode == EgressMode.POD && node.getSpec() != null) {
      List<String> specCidrs = node.getSpec().getPodCIDRs();
      if ((specCidrs == null || specCidrs.isEmpty()) && node.getSpec().getPodCIDR() != null) {
        specCidrs = List.of(node.getSpec().getPodCIDR());
      }
      for (String c : specCidrs == null ? List.<String>of() : specCidrs) {
        try {
          cidrs.add(Cidr.parse(c));
        } catch (IllegalArgumentException e) {
          log.warn("node {}: ignoring pod CIDR {}: {}", name, c, e.getMessage());
        }
      }
    }
    int kubeletPort = DEFAULT_KUBELET_PORT;
    if (node.getStatus() != null
        && node.getStatus().getDaemonEndpoints() != null
        && node.getStatus().getDaemonEndpoints().getKubeletEndpoint() != null) {
      Integer p = node.getStatus().getDaemonEndpoints().getKubeletEndpoint().getPort();
      if (p != null && p > 0 && p <= 65535) {
        kubeletPort = p;
      }
    }
    nodes.remove(name);
    nodes.put(name, new NodeInfo(name, addresses, cidrs, kubeletPort));
    scheduleRebuild();
  }

  private synchronized void removeNode(String uid, Node node) {
    nodes.remove(node.getMetadata().getName());
    nodeAliases.remove(node.getMetadata().getName());
    scheduleRebuild();
  }

  private synchronized void putPod(String uid, Pod pod) {
    pods.remove(uid);
    String node = pod.getSpec() == null ? null : pod.getSpec().getNodeName();
    boolean hostNetwork =
        pod.getSpec() != null && Boolean.TRUE.equals(pod.getSpec().getHostNetwork());
    List<InetAddress> ips = new ArrayList<>();
    if (node != null && !hostNetwork && pod.getStatus() != null) {
      if (pod.getStatus().getPodIPs() != null) {
        for (PodIP ip : pod.getStatus().getPodIPs()) {
          InetAddress a = literal(ip.getIp());
          if (a != null) {
            ips.add(a);
          }
        }
      }
      if (ips.isEmpty() && pod.getStatus().getPodIP() != null) {
        InetAddress a = literal(pod.getStatus().getPodIP());
        if (a != null) {
          ips.add(a);
        }
      }
    }
    if (!ips.isEmpty()) {
      pods.put(uid, new Claims(ips, java.util.Collections.nCopies(ips.size(), node)));
    }
    scheduleRebuild();
  }

  private synchronized void putSlice(String uid, EndpointSlice slice) {
    slices.remove(uid);
    List<InetAddress> ips = new ArrayList<>();
    List<String> owners = new ArrayList<>();
    if (slice.getEndpoints() != null) {
      for (Endpoint e : slice.getEndpoints()) {
        if (e.getNodeName() == null || e.getAddresses() == null) {
          continue;
        }
        for (String address : e.getAddresses()) {
          InetAddress a = literal(address);
          if (a != null) {
            ips.add(a);
            owners.add(e.getNodeName());
          }
        }
      }
    }
    if (!ips.isEmpty()) {
      slices.put(uid, new Claims(ips, owners));
    }
    scheduleRebuild();
  }

  private synchronized void remove(Map<String, Claims> claims, String uid) {
    // Only this object's claims go: an IP reused by another object keeps that owner.
    if (claims.remove(uid) != null) {
      scheduleRebuild();
    }
  }

  // ---- the index -----------------------------------------------------------------------------

  private synchronized void scheduleRebuild() {
    if (!rebuildScheduled && !rebuilder.isShutdown()) {
      rebuildScheduled = true;
      rebuilder.schedule(this::rebuild, rebuildDelayMillis, TimeUnit.MILLISECONDS);
    }
  }

  private void rebuild() {
    boolean synced = informers.stream().allMatch(SharedIndexInformer::hasSynced);
    RouteIndex.Builder b = RouteIndex.builder();
    Map<String, NodeInfo> byName;
    synchronized (this) {
      rebuildScheduled = false;
      for (NodeInfo n : nodes.values()) {
        b.node(n);
        for (String alias : nodeAliases.getOrDefault(n.name(), List.of())) {
          b.alias(alias, n.name());
        }
      }
      // Slices first, pods last: a pod's own IP is the more specific claim.
      for (Map<String, Claims> source : List.of(slices, pods)) {
        for (Claims c : source.values()) {
          for (int i = 0; i < c.ips().size(); i++) {
            b.podIp(c.ips().get(i), c.nodes().get(i));
          }
        }
      }
      byName = Map.copyOf(nodes);
    }
    index = b.build();
    nodesByName = byName;
    if (synced && !indexedAfterSync) {
      indexedAfterSync = true;
      log.info("route source {}", describe());
    } else if (!synced) {
      scheduleRebuild(); // check again until the informers have synced
    }
  }

  private static InetAddress literal(String s) {
    if (s == null) {
      return null;
    }
    try {
      return Cidr.parseAddress(s);
    } catch (IllegalArgumentException e) {
      return null; // a host name or garbage: not an address to route
    }
  }

  @Override
  public void close() {
    informers.forEach(SharedIndexInformer::stop);
    rebuilder.shutdownNow();
  }
}
