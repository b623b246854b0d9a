package io.egresstunnel.agent.policy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.proto.Cidr;
import java.net.Inet6Address;
import java.net.InetAddress;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class AllowRuleTest {

  private static InetAddress ip(String literal) {
    return Cidr.parseAddress(literal);
  }

  @ParameterizedTest
  @CsvSource({
    "10.0.0.0/8, 10.0.0.0/8, 1, 65535, 10.0.0.0/8",
    "10.0.0.5, 10.0.0.5/32, 1, 65535, 10.0.0.5/32",
    "10.0.0.5:443, 10.0.0.5/32, 443, 443, 10.0.0.5/32:443",
    "10.0.0.0/8:443, 10.0.0.0/8, 443, 443, 10.0.0.0/8:443",
    "192.168.1.0/24:8000-8100, 192.168.1.0/24, 8000, 8100, 192.168.1.0/24:8000-8100",
    "fd00::/64:443, fd00::/64, 443, 443, [fd00::/64]:443",
    "[fd00::1]:443, fd00::1/128, 443, 443, [fd00::1/128]:443",
    "[fd00::/64]:80-90, fd00::/64, 80, 90, [fd00::/64]:80-90",
    "::1, ::1/128, 1, 65535, ::1/128",
    "[::1], ::1/128, 1, 65535, ::1/128",
    "fd00::1:443, fd00::1:443/128, 1, 65535, fd00::1:443/128",
    "'  10.0.0.0/8:1-65535 ', 10.0.0.0/8, 1, 65535, 10.0.0.0/8",
    "::ffff:10.0.0.0/104:22, 10.0.0.0/8, 22, 22, 10.0.0.0/8:22",
    "[::ffff:10.0.0.5]:22, 10.0.0.5/32, 22, 22, 10.0.0.5/32:22",
  })
  void parsesEveryForm(String spec, String cidr, int from, int to, String canonical) {
    AllowRule rule = AllowRule.parse(spec);

    assertThat(rule.cidr()).isEqualTo(Cidr.parse(cidr));
    assertThat(rule.fromPort()).isEqualTo(from);
    assertThat(rule.toPort()).isEqualTo(to);
    assertThat(rule).hasToString(canonical);
    assertThat(AllowRule.parse(rule.toString())).isEqualTo(rule);
  }

  @ParameterizedTest
  @CsvSource({
    "'', empty",
    "'   ', empty",
    "10.0.0.0/, prefix length '' is not a number",
    "10.0.0.0/x, prefix length 'x' is not a number",
    "10.0.0.0/33, outside the allowed range 0..32",
    "fd00::/129, outside the allowed range 0..128",
    "10.0.0.1/8, has host bits set",
    "fd00::1/64:443, has host bits set",
    "10.0.0.0/8:0, port 0 is outside 1..65535",
    "10.0.0.0/8:70000, port 70000 is outside 1..65535",
    "10.0.0.0/8:100000, port '100000' is not a number",
    "10.0.0.0/8:90-80, port range 90-80 is inverted",
    "10.0.0.0/8:, port '' is not a number",
    "10.0.0.0/8:80-, port '' is not a number",
    "10.0.0.0/8:+80, port '+80' is not a number",
    "10.0.0.0/8:http, port 'http' is not a number",
    "garbage, 'garbage' is not an IP address",
    "example.com:443, 'example.com' is not an IP address",
    "10.0.0.256, '10.0.0.256' is not an IP address",
    "::ffff:10.0.0.0/8, IPv4-mapped prefix needs a length of 96..128",
    "::ffff:10.0.0.0/129, IPv4-mapped prefix needs a length of 96..128, not 129",
    "[fd00::1, missing ']'",
    "[fd00::1]443, unexpected '443' after ']'",
    "[fd00::1]:, port '' is not a number",
  })
  void rejectsBadSpecsWithClearMessages(String spec, String problem) {
    assertThatThrownBy(() -> AllowRule.parse(spec))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(problem)
        .hasMessageContaining("expected CIDR[:PORT[-PORT]]")
        .hasMessageContaining("1..65535");
  }

  @ParameterizedTest
  @ValueSource(strings = {"10.0.0.0/8:443", "fd00::/64:8000-8100"})
  void badSpecMessageNamesTheSpec(String good) {
    String bad = good + "x";
    assertThatThrownBy(() -> AllowRule.parse(bad))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageStartingWith("invalid --allow rule '" + bad + "'");
  }

  @Test
  void nullSpecIsRejected() {
    assertThatThrownBy(() -> AllowRule.parse(null)).isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void constructorValidatesPorts() {
    Cidr cidr = Cidr.parse("10.0.0.0/8");
    assertThatThrownBy(() -> new AllowRule(cidr, 0, 10))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("1..65535");
    assertThatThrownBy(() -> new AllowRule(cidr, 10, 65536))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> new AllowRule(cidr, 20, 10))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("inverted");
    assertThatThrownBy(() -> new AllowRule(null, 1, 10))
        .isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void allowsChecksAddressAndPortRange() {
    AllowRule rule = AllowRule.parse("192.168.1.0/24:8000-8100");

    assertThat(rule.allows(ip("192.168.1.7"), 8000)).isTrue();
    assertThat(rule.allows(ip("192.168.1.7"), 8100)).isTrue();
    assertThat(rule.allows(ip("192.168.1.7"), 7999)).isFalse();
    assertThat(rule.allows(ip("192.168.1.7"), 8101)).isFalse();
    assertThat(rule.allows(ip("192.168.2.7"), 8050)).isFalse();
    assertThat(rule.allows(ip("::ffff:c0a8:107"), 8050)).isTrue();
  }

  @Test
  void allowsIpv6AndAllPorts() {
    AllowRule rule = AllowRule.parse("fd00::/64");

    assertThat(rule.allPorts()).isTrue();
    assertThat(rule.allows(ip("fd00::abcd"), 1)).isTrue();
    assertThat(rule.allows(ip("fd00::abcd"), 65535)).isTrue();
    assertThat(rule.allows(ip("fd00:0:0:1::abcd"), 443)).isFalse();
    assertThat(rule.allows(ip("10.0.0.1"), 443)).isFalse();
  }

  @Test
  void allowsMatchesIpv4MappedTargetsAsIpv4() throws Exception {
    AllowRule rule = AllowRule.parse("10.0.0.0/8:443");
    byte[] mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte) 0xFF, (byte) 0xFF, 10, 1, 2, 3};
    InetAddress target = Inet6Address.getByAddress(null, mapped, -1);

    assertThat(target).isInstanceOf(Inet6Address.class);
    assertThat(rule.allows(target, 443)).isTrue();
    assertThat(rule.allows(target, 444)).isFalse();
  }
}
