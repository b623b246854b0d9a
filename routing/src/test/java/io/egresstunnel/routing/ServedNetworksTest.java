package io.egresstunnel.routing;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.proto.Cidr;
import java.util.List;
import org.junit.jupiter.api.Test;

class ServedNetworksTest {

  private static ServedNetworks.Served served(List<String> cidrs, List<String> hosts) {
    return new ServedNetworks.Served(cidrs.stream().map(Cidr::parse).toList(), hosts);
  }

  @Test
  void aServedCidrOrHostRoutesAnyPortThroughItsAgentAndTheLongestPrefixWins() {
    ServedNetworks nets = new ServedNetworks(EgressMode.AGENT);
    nets.upsert("site-a", served(List.of("192.168.0.0/16", "fd00:50::/48"), List.of("db.site")));
    nets.upsert("site-b", served(List.of("192.168.7.0/24"), List.of()));
    assertThat(nets.route("192.168.1.5", 5432)).isEqualTo(new Route.ViaNetwork("site-a"));
    assertThat(nets.route("192.168.7.5", 22)).isEqualTo(new Route.ViaNetwork("site-b"));
    assertThat(nets.route("fd00:50::9", 443)).isEqualTo(new Route.ViaNetwork("site-a"));
    assertThat(nets.route("DB.SITE", 5432)).isEqualTo(new Route.ViaNetwork("site-a"));
    assertThat(nets.route("10.0.0.1", 443)).isEqualTo(Route.DEFAULT);
    assertThat(nets.route("web.site", 443)).isEqualTo(Route.DEFAULT);

    nets.remove("site-b");
    assertThat(nets.route("192.168.7.5", 22)).isEqualTo(new Route.ViaNetwork("site-a"));
    nets.upsert("site-a", served(List.of(), List.of()));
    assertThat(nets.route("192.168.1.5", 5432)).isEqualTo(Route.DEFAULT);
    assertThat(nets.all()).isEmpty();
  }

  @Test
  void disabledModeDialsEverythingDirectly() {
    ServedNetworks nets = new ServedNetworks(EgressMode.DISABLED);
    nets.upsert("site-a", served(List.of("192.168.0.0/16"), List.of()));
    assertThat(nets.route("192.168.1.5", 5432)).isEqualTo(Route.DIRECT);
  }

  /** A node's own routes come first; the served networks take what they leave to the default. */
  @Test
  void nodeRoutesComeFirstThenServedNetworks() {
    DeclaredRouter nodes = new DeclaredRouter(EgressMode.POD);
    nodes.upsert(
        new NodeInfo(
            "node-a",
            List.of(Cidr.parseAddress("10.0.0.1")),
            List.of(Cidr.parse("10.42.1.0/24")),
            10250));
    ServedNetworks nets = new ServedNetworks(EgressMode.POD);
    nets.upsert("site-a", served(List.of("10.0.0.0/8"), List.of()));
    Router router = nodes.orElse(nets);
    assertThat(router.route("10.42.1.7", 80)).isEqualTo(new Route.ViaAgent("node-a"));
    assertThat(router.route("10.0.0.1", 10250)).isEqualTo(new Route.ViaAgent("node-a"));
    assertThat(router.route("10.0.0.1", 22)).isEqualTo(new Route.ViaNetwork("site-a"));
    assertThat(router.route("10.9.9.9", 443)).isEqualTo(new Route.ViaNetwork("site-a"));
    assertThat(router.route("172.16.0.1", 443)).isEqualTo(Route.DEFAULT);
  }
}
