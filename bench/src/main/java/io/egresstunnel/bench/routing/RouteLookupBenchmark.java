package io.egresstunnel.bench.routing;

import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.routing.NodeInfo;
import io.egresstunnel.routing.Route;
import io.egresstunnel.routing.index.RouteIndex;
import io.netty.util.NetUtil;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Route decisions in cluster mode with 5,000 nodes (each with an address, a name and a pod CIDR)
 * and 100,000 pod IPs, for IPv4-only, IPv6-only and dual-stack clusters. The targets cycle through
 * kubelet hits, pod IPs, CIDR-only hits, node names and misses. {@code hashMapBaseline} is the
 * same-run baseline: parse to an {@link InetAddress}, look up a {@code HashMap}, as a
 * straightforward router does.
 *
 * <p>Run: {@code java -jar bench/target/benchmarks.jar RouteLookup -prof gc}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
    value = 1,
    jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class RouteLookupBenchmark {
  static final int NODES = 5_000;
  static final int PODS = 100_000;

  @Param({"ipv4", "ipv6", "dual"})
  public String family;

  private RouteIndex index;
  private Map<InetAddress, String> baseline;
  private String[] hosts;
  private int[] ports;
  private int next;

  @Setup
  public void setUp() throws Exception {
    Random r = new Random(1);
    RouteIndex.Builder b = RouteIndex.builder();
    baseline = new HashMap<>();
    List<String> targets = new ArrayList<>();
    List<Integer> targetPorts = new ArrayList<>();
    for (int n = 0; n < NODES; n++) {
      boolean v6 = family.equals("ipv6") || (family.equals("dual") && n % 2 == 1);
      String address =
          v6 ? "fd00::" + Integer.toHexString(n + 1) : "10.0." + (n >> 8) + "." + (n & 0xFF);
      Cidr cidr =
          v6
              ? Cidr.parse("fd00:42:" + Integer.toHexString(n) + "::/64")
              : Cidr.parse("10." + (64 + (n >> 8)) + "." + (n & 0xFF) + ".0/24");
      b.node(new NodeInfo("node-" + n, List.of(Cidr.parseAddress(address)), List.of(cidr), 10250));
      baseline.put(Cidr.parseAddress(address), "node-" + n);
      targets.add(address);
      targetPorts.add(10250);
    }
    for (int p = 0; p < PODS; p++) {
      int n = r.nextInt(NODES);
      boolean v6 = family.equals("ipv6") || (family.equals("dual") && p % 2 == 1);
      // Pod IPs lie outside node addresses (10.0/16) and pod CIDRs (10.64/10).
      String ip =
          v6
              ? "fd00:99::" + Integer.toHexString(p >> 16) + ":" + Integer.toHexString(p & 0xFFFF)
              : "10." + (128 + (p >> 16)) + "." + (p >> 8 & 0xFF) + "." + (p & 0xFF);
      InetAddress a = Cidr.parseAddress(ip);
      b.podIp(a, "node-" + n);
      baseline.put(a, "node-" + n);
      if (p % 10 == 0) {
        targets.add(ip);
        targetPorts.add(8443);
      }
    }
    index = b.build();
    for (int i = 0; i < 2_000; i++) { // misses and names
      targets.add(i % 2 == 0 ? "192.0.2." + (i % 250) : "2001:db8::" + Integer.toHexString(i));
      targetPorts.add(443);
      targets.add("node-" + r.nextInt(NODES));
      targetPorts.add(10250);
    }
    hosts = targets.toArray(String[]::new);
    ports = targetPorts.stream().mapToInt(Integer::intValue).toArray();
    System.out.printf(
        "%nroute index (%s): %d nodes, %d pod IPs, address tables %.1f MiB (%.0f bytes per pod IP"
            + " with tables at 50%% load)%n",
        family,
        NODES,
        index.podEntries(),
        index.tableBytes() / 1048576.0,
        (double) index.tableBytes() / (NODES + PODS));
  }

  @Benchmark
  public Route routeIndex() {
    int i = next++ % hosts.length;
    if (next == hosts.length) {
      next = 0;
    }
    return index.route(hosts[i], ports[i], EgressMode.CLUSTER);
  }

  @Benchmark
  public Object hashMapBaseline() throws UnknownHostException {
    int i = next++ % hosts.length;
    if (next == hosts.length) {
      next = 0;
    }
    byte[] raw = NetUtil.createByteArrayFromIpAddressString(hosts[i]);
    if (raw == null) {
      return null;
    }
    String node = baseline.get(InetAddress.getByAddress(raw));
    return node == null ? Route.DIRECT : new Route.ViaAgent(node);
  }
}
