/**
 * What both commands' {@code status} subcommands share: reading an admin listener ({@link
 * io.egresstunnel.proto.status.AdminClient}), text tables and units ({@link
 * io.egresstunnel.proto.status.StatusText}), and the refreshing view of {@code --watch} ({@link
 * io.egresstunnel.proto.status.Watch}).
 */
package io.egresstunnel.proto.status;
