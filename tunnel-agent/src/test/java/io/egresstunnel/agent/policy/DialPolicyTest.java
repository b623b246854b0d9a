package io.egresstunnel.agent.policy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class DialPolicyTest {

  private static final String NODE = "worker-1";

  private static InetAddress ip(String literal) {
    return Cidr.parseAddress(literal);
  }

  private static DialPolicy policy(EgressMode mode, int kubeletPort, String... allow) {
    List<AllowRule> rules = new ArrayList<>();
    for (String spec : allow) {
      rules.add(AllowRule.parse(spec));
    }
    return new DialPolicy(
        mode,
        NODE,
        List.of(ip("fd00::5"), ip("10.0.0.5")),
        List.of(Cidr.parse("10.42.1.0/24"), Cidr.parse("fd00:42:1::/64")),
        kubeletPort,
        rules);
  }

  private static InetAddress mapped(int a, int b, int c, int d) throws Exception {
    byte[] raw = {
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte) 0xFF, (byte) 0xFF, (byte) a, (byte) b, (byte) c, (byte) d
    };
    return Inet6Address.getByAddress(null, raw, -1);
  }

  @ParameterizedTest
  @EnumSource(EgressMode.class)
  void nodeAddressesOnKubeletPortsAreAllowedInEveryMode(EgressMode mode) {
    DialPolicy policy = policy(mode, 10250);

    assertThat(policy.check(ip("10.0.0.5"), 10250).allowed()).isTrue();
    assertThat(policy.check(ip("10.0.0.5"), 10010).allowed()).isTrue();
    assertThat(policy.check(ip("fd00::5"), 10250).allowed()).isTrue();
    assertThat(policy.check(ip("fd00::5"), 10010).allowed()).isTrue();
  }

  @Test
  void customKubeletPortReplacesTheDefaultButKeepsTheStreamingPort() {
    DialPolicy policy = policy(EgressMode.AGENT, 10251);

    assertThat(policy.check(ip("10.0.0.5"), 10251).allowed()).isTrue();
    assertThat(policy.check(ip("10.0.0.5"), 10010).allowed()).isTrue();
    assertThat(policy.check(ip("fd00::5"), 10251).allowed()).isTrue();
    DialPolicy.Decision refused = policy.check(ip("10.0.0.5"), 10250);
    assertThat(refused.allowed()).isFalse();
    assertThat(refused.reason()).contains("(10251, 10010)");
  }

  @Test
  void nonKubeletPortOnNodeAddressIsRefused() {
    DialPolicy policy = policy(EgressMode.CLUSTER, 10250);

    DialPolicy.Decision v4 = policy.check(ip("10.0.0.5"), 22);
    DialPolicy.Decision v6 = policy.check(ip("fd00::5"), 22);

    assertThat(v4.allowed()).isFalse();
    assertThat(v4.reason())
        .isEqualTo(
            "10.0.0.5:22 is an address of node worker-1 but not on a kubelet port (10250, 10010),"
                + " not in its pod CIDRs, and not in any --allow rule");
    assertThat(v6.allowed()).isFalse();
    assertThat(v6.reason()).startsWith("[fd00::5]:22 is an address of node worker-1");
  }

  @Test
  void otherAddressOnKubeletPortIsRefused() {
    DialPolicy policy = policy(EgressMode.AGENT, 10250);

    assertThat(policy.check(ip("10.0.0.6"), 10250).allowed()).isFalse();
    assertThat(policy.check(ip("fd00::6"), 10250).allowed()).isFalse();
  }

  @Test
  void loopbackIsNotImplicitlyAllowed() {
    DialPolicy policy = policy(EgressMode.CLUSTER, 10250);

    assertThat(policy.check(ip("127.0.0.1"), 10250).allowed()).isFalse();
    assertThat(policy.check(ip("::1"), 10250).allowed()).isFalse();
  }

  @Test
  void loopbackIsAllowedWhenDeclared() {
    DialPolicy asNode =
        new DialPolicy(
            EgressMode.AGENT, NODE, List.of(ip("127.0.0.1")), List.of(), 10250, List.of());
    DialPolicy byRule = policy(EgressMode.AGENT, 10250, "127.0.0.1:8080", "::1");

    assertThat(asNode.check(ip("127.0.0.1"), 10250).allowed()).isTrue();
    assertThat(byRule.check(ip("127.0.0.1"), 8080).allowed()).isTrue();
    assertThat(byRule.check(ip("127.0.0.1"), 8081).allowed()).isFalse();
    assertThat(byRule.check(ip("::1"), 9999).allowed()).isTrue();
  }

  @ParameterizedTest
  @EnumSource(
      value = EgressMode.class,
      names = {"POD", "CLUSTER"})
  void podCidrsAreAllowedOnAnyPortInPodAndClusterModes(EgressMode mode) {
    DialPolicy policy = policy(mode, 10250);

    assertThat(policy.check(ip("10.42.1.17"), 8080).allowed()).isTrue();
    assertThat(policy.check(ip("10.42.1.255"), 1).allowed()).isTrue();
    assertThat(policy.check(ip("fd00:42:1::abc"), 443).allowed()).isTrue();
    assertThat(policy.check(ip("10.42.2.17"), 8080).allowed()).isFalse();
    assertThat(policy.check(ip("fd00:42:2::abc"), 443).allowed()).isFalse();
  }

  @ParameterizedTest
  @EnumSource(
      value = EgressMode.class,
      names = {"AGENT", "DISABLED"})
  void podCidrsAreRefusedInAgentAndDisabledModes(EgressMode mode) {
    DialPolicy policy = policy(mode, 10250);

    DialPolicy.Decision decision = policy.check(ip("10.42.1.17"), 8080);

    assertThat(decision.allowed()).isFalse();
    assertThat(decision.reason())
        .contains("10.42.1.17:8080", "worker-1", "pod CIDRs", mode.flagValue());
    assertThat(policy.check(ip("fd00:42:1::abc"), 443).allowed()).isFalse();
  }

  @Test
  void allowRulesWithPortRanges() {
    DialPolicy policy =
        policy(
            EgressMode.AGENT,
            10250,
            "192.168.1.0/24:8000-8100",
            "[fd00:99::/64]:443",
            "172.16.0.9");

    assertThat(policy.check(ip("192.168.1.50"), 8000).allowed()).isTrue();
    assertThat(policy.check(ip("192.168.1.50"), 8100).allowed()).isTrue();
    assertThat(policy.check(ip("192.168.1.50"), 8101).allowed()).isFalse();
    assertThat(policy.check(ip("192.168.2.50"), 8050).allowed()).isFalse();
    assertThat(policy.check(ip("fd00:99::1"), 443).allowed()).isTrue();
    assertThat(policy.check(ip("fd00:99::1"), 80).allowed()).isFalse();
    assertThat(policy.check(ip("172.16.0.9"), 5432).allowed()).isTrue();
    assertThat(policy.check(ip("172.16.0.10"), 5432).allowed()).isFalse();
    assertThat(policy.check(ip("192.168.1.50"), 8050).reason())
        .isEqualTo("allowed by --allow 192.168.1.0/24:8000-8100");
  }

  @Test
  void allowRulesExtendNodeAddressesToOtherPorts() {
    DialPolicy policy = policy(EgressMode.AGENT, 10250, "10.0.0.5:9100");

    assertThat(policy.check(ip("10.0.0.5"), 9100).allowed()).isTrue();
    assertThat(policy.check(ip("10.0.0.5"), 9101).allowed()).isFalse();
  }

  @Test
  void ipv4MappedTargetsMatchAsIpv4() throws Exception {
    DialPolicy policy = policy(EgressMode.POD, 10250, "192.168.1.0/24:443");

    assertThat(policy.check(mapped(10, 0, 0, 5), 10250).allowed()).isTrue();
    assertThat(policy.check(mapped(10, 42, 1, 3), 80).allowed()).isTrue();
    assertThat(policy.check(mapped(192, 168, 1, 3), 443).allowed()).isTrue();
    assertThat(policy.check(mapped(10, 0, 0, 6), 10250).allowed()).isFalse();
  }

  @Test
  void ipv4MappedNodeAddressesAreStoredAsIpv4() throws Exception {
    DialPolicy policy =
        new DialPolicy(
            EgressMode.AGENT, NODE, List.of(mapped(10, 0, 0, 7)), List.of(), 10250, List.of());

    assertThat(policy.nodeAddresses()).containsExactly(ip("10.0.0.7"));
    assertThat(policy.check(ip("10.0.0.7"), 10250).allowed()).isTrue();
  }

  @Test
  void refusalReasonNamesTargetNodeAndPorts() {
    DialPolicy policy = policy(EgressMode.CLUSTER, 10250);

    DialPolicy.Decision decision = policy.check(ip("10.1.2.3"), 22);

    assertThat(decision.allowed()).isFalse();
    assertThat(decision.reason())
        .isEqualTo(
            "10.1.2.3:22 is not an address of node worker-1 on a kubelet port (10250, 10010),"
                + " not in its pod CIDRs, and not in any --allow rule");
  }

  @Test
  void refusalReasonInAgentModeLeavesOutPodCidrsItDoesNotDial() {
    DialPolicy policy = policy(EgressMode.AGENT, 10010);

    assertThat(policy.check(ip("fd00::77"), 22).reason())
        .isEqualTo(
            "[fd00::77]:22 is not an address of node worker-1 on a kubelet port (10010),"
                + " and not in any --allow rule");
  }

  @Test
  void allowedDecisionsSayWhy() {
    DialPolicy policy = policy(EgressMode.POD, 10250);

    assertThat(policy.check(ip("10.0.0.5"), 10250).reason()).contains("kubelet", "worker-1");
    assertThat(policy.check(ip("10.42.1.1"), 80).reason()).contains("pod CIDR", "worker-1");
  }

  @Test
  void nodeNameMatchesCaseInsensitively() {
    DialPolicy policy = policy(EgressMode.AGENT, 10250);

    assertThat(policy.isNodeName("worker-1")).isTrue();
    assertThat(policy.isNodeName("WORKER-1")).isTrue();
    assertThat(policy.isNodeName("worker-2")).isFalse();
    assertThat(policy.isNodeName(null)).isFalse();
  }

  @Test
  void nodeNameTargetPrefersTheFirstIpv4Address() {
    assertThat(policy(EgressMode.AGENT, 10250).nodeNameTarget()).isEqualTo(ip("10.0.0.5"));

    DialPolicy ipv6Only =
        new DialPolicy(
            EgressMode.AGENT,
            NODE,
            List.of(ip("fd00::5"), ip("fd00::6")),
            List.of(),
            10250,
            List.of());
    assertThat(ipv6Only.nodeNameTarget()).isEqualTo(ip("fd00::5"));
  }

  @Test
  void nodeNameTargetFailsWithoutAddresses() {
    DialPolicy policy =
        new DialPolicy(EgressMode.AGENT, NODE, List.of(), List.of(), 10250, List.of());

    assertThatThrownBy(policy::nodeNameTarget)
        .isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("worker-1")
        .hasMessageContaining("no addresses");
  }

  @Test
  void constructorValidatesItsInputs() {
    assertThatThrownBy(
            () -> new DialPolicy(EgressMode.AGENT, " ", List.of(), List.of(), 10250, List.of()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("node name");
    assertThatThrownBy(
            () -> new DialPolicy(EgressMode.AGENT, NODE, List.of(), List.of(), 0, List.of()))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("kubelet port 0");
    assertThatThrownBy(
            () -> new DialPolicy(EgressMode.AGENT, NODE, List.of(), List.of(), 65536, List.of()))
        .isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void accessorsAndDescribe() {
    DialPolicy policy = policy(EgressMode.POD, 10250, "10.0.0.0/8:443");

    assertThat(policy.mode()).isEqualTo(EgressMode.POD);
    assertThat(policy.nodeName()).isEqualTo(NODE);
    assertThat(policy.kubeletPort()).isEqualTo(10250);
    assertThat(policy.podCidrs()).hasSize(2);
    assertThat(policy.extraRules()).containsExactly(AllowRule.parse("10.0.0.0/8:443"));
    assertThat(policy.describe())
        .doesNotContain("\n")
        .contains(
            "worker-1",
            "pod",
            "10.0.0.5",
            "fd00::5",
            "10250, 10010",
            "10.42.1.0/24",
            "fd00:42:1::/64",
            "10.0.0.0/8:443");
  }

  private static DialPolicy carrier(
      boolean defaultRoute, List<String> served, List<String> hosts, String... allow) {
    List<AllowRule> rules = new ArrayList<>();
    for (String spec : allow) {
      rules.add(AllowRule.parse(spec));
    }
    return new DialPolicy(
        EgressMode.AGENT,
        NODE,
        List.of(ip("10.0.0.5")),
        List.of(),
        10250,
        rules,
        defaultRoute,
        served.stream().map(Cidr::parse).toList(),
        hosts);
  }

  @Test
  void aDefaultRouteDialsWhatNoNodeOwnsButNotLoopbackLinkLocalOrMulticast() {
    DialPolicy p = carrier(true, List.of(), List.of());
    assertThat(p.check(ip("10.96.0.10"), 443).allowed()).isTrue(); // a ClusterIP
    assertThat(p.check(ip("203.0.113.7"), 8443).reason()).contains("--default-route");
    assertThat(p.check(ip("2001:db8::7"), 443).allowed()).isTrue();
    DialPolicy.Decision metadata = p.check(ip("169.254.169.254"), 80);
    assertThat(metadata.allowed()).isFalse();
    assertThat(metadata.reason())
        .isEqualTo(
            "169.254.169.254:80 is a link-local address (cloud metadata lives there), which the"
                + " default route never dials unless an --allow rule covers it");
    assertThat(p.check(ip("127.0.0.1"), 8080).reason()).contains("a loopback address");
    assertThat(p.check(ip("::1"), 8080).allowed()).isFalse();
    assertThat(p.check(ip("fe80::1"), 80).allowed()).isFalse();
    assertThat(p.check(ip("0.0.0.0"), 80).allowed()).isFalse();
    assertThat(p.check(ip("224.0.0.1"), 80).allowed()).isFalse();
    assertThat(p.check(ip("::ffff:127.0.0.1"), 80).allowed()).isFalse();
    // --allow covers what the default route would not.
    assertThat(carrier(true, List.of(), List.of(), "127.8.0.0/16").check(ip("127.8.1.1"), 80))
        .extracting(DialPolicy.Decision::allowed)
        .isEqualTo(true);
    assertThat(p.checkName("webhook.ns.svc").allowed()).isTrue();
  }

  @Test
  void withoutADefaultRouteOnlyTheNodesNameAndServedHostsAreDialledByName() {
    DialPolicy plain = carrier(false, List.of(), List.of());
    DialPolicy.Decision name = plain.checkName("webhook.ns.svc");
    assertThat(name.allowed()).isFalse();
    assertThat(name.reason())
        .isEqualTo(
            "webhook.ns.svc is a host name; this agent dials names only with --default-route or"
                + " --serve-host (node worker-1)");
    assertThat(plain.checkName("WORKER-1").allowed()).isTrue();
    assertThat(plain.check(ip("10.96.0.10"), 443).allowed()).isFalse();

    DialPolicy site = carrier(false, List.of("192.168.50.0/24"), List.of("db.site"));
    assertThat(site.checkName("DB.site").allowed()).isTrue();
    assertThat(site.checkName("web.site").allowed()).isFalse();
    // A served host resolves to any address but the ones a default route refuses.
    assertThat(site.check(ip("172.16.0.9"), 5432, "db.site").allowed()).isTrue();
    assertThat(site.check(ip("172.16.0.9"), 5432, null).allowed()).isFalse();
    assertThat(site.check(ip("127.0.0.1"), 5432, "db.site").reason())
        .contains("a served host never dials");
    // A served network: any port of any address in it.
    assertThat(site.check(ip("192.168.50.9"), 22).reason())
        .isEqualTo("in a network this agent serves (--serve-cidr 192.168.50.0/24)");
    assertThat(site.check(ip("192.168.51.9"), 22).allowed()).isFalse();
    assertThat(site.describe()).contains("serves [192.168.50.0/24] and hosts [db.site]");
  }
}
