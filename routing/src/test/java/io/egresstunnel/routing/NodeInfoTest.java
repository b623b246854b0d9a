package io.egresstunnel.routing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.proto.Cidr;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class NodeInfoTest {

  @Test
  void rejectsEmptyNameAndKubeletPortOutOfRange() {
    assertThatThrownBy(() -> new NodeInfo("", List.of(), List.of(), 10250))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("node name");
    assertThatThrownBy(() -> new NodeInfo("n", List.of(), List.of(), 0))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("kubelet port");
    assertThatThrownBy(() -> new NodeInfo("n", List.of(), List.of(), 65536))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("kubelet port");
  }

  @Test
  void copiesItsLists() {
    List<InetAddress> addresses = new ArrayList<>(List.of(Cidr.parseAddress("10.0.0.1")));
    List<Cidr> podCidrs = new ArrayList<>(List.of(Cidr.parse("10.42.0.0/24")));
    NodeInfo node = new NodeInfo("n", addresses, podCidrs, 65535);

    addresses.clear();
    podCidrs.clear();

    assertThat(node.addresses()).containsExactly(Cidr.parseAddress("10.0.0.1"));
    assertThat(node.podCidrs()).containsExactly(Cidr.parse("10.42.0.0/24"));
    assertThatThrownBy(() -> node.addresses().clear())
        .isInstanceOf(UnsupportedOperationException.class);
  }
}
