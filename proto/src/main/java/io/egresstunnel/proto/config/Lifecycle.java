package io.egresstunnel.proto.config;

import java.util.concurrent.CountDownLatch;

/** How the server and agent processes live: run until SIGTERM or SIGINT, then close cleanly. */
public final class Lifecycle {
  private Lifecycle() {}

  /** Blocks until the JVM is asked to exit, then closes {@code service} before it does. */
  public static void runUntilSignalled(String name, AutoCloseable service)
      throws InterruptedException {
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  try {
                    service.close();
                  } catch (Exception e) {
                    org.slf4j.LoggerFactory.getLogger(Lifecycle.class)
                        .warn("{}: error while shutting down", name, e);
                  } finally {
                    stopped.countDown();
                  }
                },
                name + "-shutdown"));
    stopped.await();
  }
}
