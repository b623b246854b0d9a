package io.egresstunnel.agent;

import io.egresstunnel.agent.policy.AllowRule;
import io.egresstunnel.agent.policy.DialPolicy;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.routing.KubernetesRouteSource;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.Node;
import io.fabric8.kubernetes.api.model.NodeAddress;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodIP;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.informers.ResourceEventHandler;
import io.fabric8.kubernetes.client.informers.SharedIndexInformer;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps an agent's dial policy current from the Kubernetes API: it watches its own Node and the
 * pods scheduled on it. The policy allows
 *
 * <ul>
 *   <li>the node's addresses (from the Node object; the flags until it is seen) on the kubelet port
 *       of the Node object and the streaming port, always;
 *   <li>in pod and cluster modes, the IPs of the pods on this node (any port) and the TCP ports
 *       that its hostNetwork pods declare, on the node addresses (their endpoints are node IPs); in
 *       pod mode also the node's pod CIDRs;
 *   <li>in cluster mode, the {@code --cluster-cidr} ranges;
 *   <li>the {@code --allow} rules, always.
 * </ul>
 *
 * Pods are selected by {@code spec.nodeName} on the server and checked again here.
 */
final class NodePolicySource implements AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(NodePolicySource.class);

  private final AgentConfig config;
  private final AtomicReference<DialPolicy> policy;
  private final List<SharedIndexInformer<?>> informers = new ArrayList<>();
  private final Map<String, Pod> pods = new LinkedHashMap<>(); // by UID; guarded by this
  private Node node; // guarded by this

  NodePolicySource(AgentConfig config, AtomicReference<DialPolicy> policy) {
    this.config = config;
    this.policy = policy;
  }

  NodePolicySource start(KubernetesClient client) {
    return start(client, true);
  }

  /**
   * @param selectOnServer ask the API server for this node's pods only ({@code spec.nodeName} field
   *     selector). Every pod is checked here too, so tests against servers that lack the selector
   *     (fabric8's mock) can pass false and watch all pods.
   */
  NodePolicySource start(KubernetesClient client, boolean selectOnServer) {
    SharedIndexInformer<Node> nodes =
        client.nodes().withField("metadata.name", config.nodeName()).runnableInformer(0);
    nodes.addEventHandler(
        handler(
            n -> {
              synchronized (this) {
                node = n;
              }
            },
            n -> {
              synchronized (this) {
                node = null;
              }
            }));
    informers.add(nodes);
    if (config.mode() == EgressMode.POD || config.mode() == EgressMode.CLUSTER) {
      SharedIndexInformer<Pod> podInformer =
          selectOnServer
              ? client
                  .pods()
                  .inAnyNamespace()
                  .withField("spec.nodeName", config.nodeName())
                  .runnableInformer(0)
              : client.pods().inAnyNamespace().runnableInformer(0);
      podInformer.addEventHandler(
          handler(
              p -> {
                synchronized (this) {
                  if (p.getSpec() != null && config.nodeName().equals(p.getSpec().getNodeName())) {
                    pods.put(KubernetesRouteSource.key(p), p);
                  } else {
                    pods.remove(KubernetesRouteSource.key(p));
                  }
                }
              },
              p -> {
                synchronized (this) {
                  pods.remove(KubernetesRouteSource.key(p));
                }
              }));
      informers.add(podInformer);
    }
    informers.forEach(SharedIndexInformer::start);
    return this;
  }

  boolean isSynced() {
    return informers.stream().allMatch(SharedIndexInformer::hasSynced);
  }

  private <T> ResourceEventHandler<T> handler(
      java.util.function.Consumer<T> put, java.util.function.Consumer<T> delete) {
    return new ResourceEventHandler<>() {
      @Override
      public void onAdd(T obj) {
        put.accept(obj);
        rebuild();
      }

      @Override
      public void onUpdate(T oldObj, T newObj) {
        put.accept(newObj);
        rebuild();
      }

      @Override
      public void onDelete(T obj, boolean finalStateUnknown) {
        delete.accept(obj);
        rebuild();
      }
    };
  }

  /** Builds the policy from what is known now and publishes it; a failure keeps the old one. */
  synchronized void rebuild() {
    try {
      policy.set(build());
    } catch (RuntimeException e) {
      log.error(
          "cannot rebuild the dial policy of node {}; keeping the previous one",
          config.nodeName(),
          e);
    }
  }

  private DialPolicy build() {
    List<InetAddress> addresses = new ArrayList<>(config.nodeAddresses());
    int kubeletPort = config.kubeletPort();
    List<Cidr> podCidrs = new ArrayList<>(config.podCidrs());
    if (node != null && node.getStatus() != null) {
      List<InetAddress> fromApi = new ArrayList<>();
      for (NodeAddress a : nullSafe(node.getStatus().getAddresses())) {
        InetAddress ip = literal(a.getAddress());
        if (ip != null && !fromApi.contains(ip)) {
          fromApi.add(ip);
        }
      }
      if (!fromApi.isEmpty()) {
        if (!fromApi.containsAll(config.nodeAddresses())) {
          log.warn(
              "--node-ip {} disagrees with the Node object ({}); the API wins",
              config.nodeAddresses(),
              fromApi);
        }
        addresses = fromApi;
      }
      if (node.getStatus().getDaemonEndpoints() != null
          && node.getStatus().getDaemonEndpoints().getKubeletEndpoint() != null
          && node.getStatus().getDaemonEndpoints().getKubeletEndpoint().getPort() != null
          && node.getStatus().getDaemonEndpoints().getKubeletEndpoint().getPort() > 0) {
        kubeletPort = node.getStatus().getDaemonEndpoints().getKubeletEndpoint().getPort();
      }
      if (node.getSpec() != null
          && node.getSpec().getPodCIDRs() != null
          && !node.getSpec().getPodCIDRs().isEmpty()) {
        podCidrs = new ArrayList<>();
        for (String c : node.getSpec().getPodCIDRs()) {
          try {
            podCidrs.add(Cidr.parse(c));
          } catch (IllegalArgumentException e) {
            log.warn("ignoring pod CIDR {} of node {}: {}", c, config.nodeName(), e.getMessage());
          }
        }
      }
    }
    List<AllowRule> rules = new ArrayList<>(config.allow());
    for (Pod p : pods.values()) {
      boolean hostNetwork =
          p.getSpec() != null && Boolean.TRUE.equals(p.getSpec().getHostNetwork());
      if (hostNetwork) {
        // Their declared ports on the node's addresses: the server routes pod mode's node-local
        // services and cluster mode's EndpointSlice addresses of hostNetwork pods here.
        for (Container c : nullSafe(p.getSpec().getContainers())) {
          for (ContainerPort port : nullSafe(c.getPorts())) {
            if ((port.getProtocol() == null || "TCP".equals(port.getProtocol()))
                && port.getContainerPort() != null) {
              for (InetAddress a : addresses) {
                rules.add(new AllowRule(host(a), port.getContainerPort(), port.getContainerPort()));
              }
            }
          }
        }
        continue;
      }
      if (p.getStatus() != null) {
        for (PodIP ip : nullSafe(p.getStatus().getPodIPs())) {
          InetAddress a = literal(ip.getIp());
          if (a != null) {
            rules.add(AllowRule.allPorts(host(a)));
          }
        }
      }
    }
    if (config.mode() == EgressMode.CLUSTER && config.kubernetes() != null) {
      for (Cidr c : config.kubernetes().clusterCidrs()) {
        rules.add(AllowRule.allPorts(c));
      }
    }
    return new DialPolicy(
        config.mode(),
        config.nodeName(),
        addresses,
        podCidrs,
        kubeletPort,
        rules,
        config.egress().defaultRoute(),
        config.egress().serveCidrs(),
        config.egress().serveHosts());
  }

  private static Cidr host(InetAddress a) {
    return new Cidr(a, a.getAddress().length * 8);
  }

  private static InetAddress literal(String s) {
    try {
      return s == null ? null : Cidr.parseAddress(s);
    } catch (IllegalArgumentException e) {
      return null;
    }
  }

  private static <T> List<T> nullSafe(List<T> list) {
    return list == null ? List.of() : list;
  }

  @Override
  public void close() {
    informers.forEach(SharedIndexInformer::stop);
  }
}
