package io.egresstunnel.routing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class EgressModeTest {

  @Test
  void parsesEveryFlagValueCaseInsensitively() {
    for (EgressMode m : EgressMode.values()) {
      assertThat(EgressMode.parse(m.flagValue())).isEqualTo(m);
      assertThat(EgressMode.parse(" " + m.name() + " ")).isEqualTo(m);
    }
  }

  @Test
  void rejectsUnknownModeListingValidOnes() {
    assertThatThrownBy(() -> EgressMode.parse("nodes"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("'nodes'")
        .hasMessageContaining("disabled, agent, pod or cluster");
  }
}
