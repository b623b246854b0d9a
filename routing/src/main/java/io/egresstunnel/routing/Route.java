package io.egresstunnel.routing;

/**
 * Where a connection goes: dialled by the server itself, through a node's agent, through the agent
 * that serves the target's network, or left to the server's default route because no node owns it.
 */
public sealed interface Route
    permits Route.Direct, Route.Default, Route.ViaAgent, Route.ViaNetwork {

  /** The one {@link Direct} route. */
  Route DIRECT = Direct.INSTANCE;

  /** The one {@link Default} route. */
  Route DEFAULT = Default.INSTANCE;

  /**
   * The server dials the target itself: every target in {@code disabled} mode, and the server's own
   * node.
   */
  enum Direct implements Route {
    INSTANCE;

    @Override
    public String toString() {
      return "Direct";
    }
  }

  /**
   * No node owns the target (a Service's ClusterIP, a name, an external address), and no agent
   * declares its network: the server's {@code --default-route} decides (dial it directly, send it
   * through an agent that offers a default route, or refuse it).
   */
  enum Default implements Route {
    INSTANCE;

    @Override
    public String toString() {
      return "Default";
    }
  }

  /**
   * The connection goes through the agent of {@code node}, which dials the target on its node.
   *
   * @param node the node name
   */
  record ViaAgent(String node) implements Route {
    public ViaAgent {
      checkNode(node);
    }
  }

  /**
   * The target is in a network (a CIDR or a host name) that the agent of {@code node} declares it
   * serves ({@code --serve-cidr}, {@code --serve-host}); it goes through that agent.
   *
   * @param node the node name of the agent that serves the network
   */
  record ViaNetwork(String node) implements Route {
    public ViaNetwork {
      checkNode(node);
    }
  }

  /**
   * The node whose agent carries {@code route}, or null for {@link #DIRECT} and {@link #DEFAULT}.
   */
  static String nodeOf(Route route) {
    if (route instanceof ViaAgent v) {
      return v.node();
    }
    return route instanceof ViaNetwork n ? n.node() : null;
  }

  private static void checkNode(String node) {
    if (node == null || node.isEmpty()) {
      throw new IllegalArgumentException("node name is empty");
    }
  }
}
